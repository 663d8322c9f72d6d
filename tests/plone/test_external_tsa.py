"""An external TSA (``tsa_url``) certified by a CA the site does not know, at the default B-LTA.

The TSA, its CA's OCSP responders and CRLs are real HTTP services of a throwaway CA
(:class:`helpers.trustserver.TrustServer`); the signer signs over the REST API with the
BankID test server. The site's own trust services (``<site>/esign-pki/*``) count every
request they get: while a case is signed, the site must answer for its own certificates
in process, never by asking itself over HTTP.
"""

from __future__ import annotations

import io
import re

import pytest
import requests
import transaction
from cryptography.hazmat.primitives import serialization
from plone import api
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import extract_certificate_info

from esign.plone import api as esign
from esign.plone.browser.trustservices import TrustServices
from esign.plone.pkiregistry import SiteCertificateRegistry
from esign.plone.signing.ltv import current_status
from esign.plone.signing.reports import assess_pdf
from esign.plone.workflow import cases
from helpers.journey import BankIDTester
from helpers.rest import OFFICER, Officer, RestSigner, refresh, sent_case_uid
from helpers.site import ANNA
from helpers.trustserver import ThrowawayCA, TrustServer, signature_timestamp_token

# The fixtures bankid_server, tester and site.
pytest_plugins = ["helpers.rest"]


@pytest.fixture()
def external_tsa(site):
    """The site's ``tsa_url`` is the TSA of a CA the site does not know (its root not yet trusted)."""
    ca, server = TrustServer.of_a_new_ca()
    server.start()
    api.portal.set_registry_record("esign.tsa_url", f"{server.url}/esign-pki/tsa")
    transaction.commit()
    yield ca, server
    server.stop()


def trust(ca: ThrowawayCA) -> None:
    pem = ca.root.public_bytes(serialization.Encoding.PEM).decode()
    api.portal.set_registry_record("esign.tsa_trust_roots", pem)
    transaction.commit()


@pytest.fixture()
def asked_of_the_site(monkeypatch) -> list[str]:
    """The services of ``<site>/esign-pki`` requested over HTTP, in order."""
    asked: list[str] = []
    answer = TrustServices.__call__

    def counted(self):
        asked.append(self.service or "")
        return answer(self)

    monkeypatch.setattr(TrustServices, "__call__", counted)
    return asked


def sign_over_rest(site, tester: BankIDTester, uid: str):
    signer = RestSigner(site.absolute_url())
    signer.login(tester, ANNA)
    started = signer.post("@esign-sign", {"case": uid, "mode": "qr"})
    assert started.status_code == 200, started.text
    tester.approve(tester.wait_for_order(kind="sign"), personal_number=ANNA["personal_number"])
    return signer.collect("@esign-sign")[-1]


def tsa_of(signed_data) -> bytes:
    return extract_certificate_info(signed_data).signer_cert.dump()


def test_a_case_signed_with_the_external_tsa_is_b_lta_from_that_tsa_and_validates(
    site, tester, external_tsa, asked_of_the_site, pdf_bytes
):
    ca, server = external_tsa
    trust(ca)
    uid = sent_case_uid(Officer(site.absolute_url()), pdf_bytes, [ANNA], title="Avtal med extern TSA")

    done = sign_over_rest(site, tester, uid)
    assert done.status_code == 200 and done.json()["status"] == "complete", done.text
    case = refresh(site, uid)
    assert esign.state_of(case) == "signed"
    data = case.signed_document.data

    # Both timestamps come from the external TSA.
    tsa = ca.tsa_certificate.public_bytes(serialization.Encoding.DER)
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    (signature,) = reader.embedded_regular_signatures
    assert tsa_of(signature_timestamp_token(signature)["content"]) == tsa
    (stamp,) = [s for s in reader.embedded_signatures if s.sig_object.get("/Type") == "/DocTimeStamp"]
    assert stamp.signer_cert.dump() == tsa
    # The external chain's status was fetched from its CA and is in the DSS.
    assert ("POST", "/esign-pki/root-ocsp") in server.requests
    # The site's own status came from the process: the site was never asked over HTTP.
    assert asked_of_the_site == []

    pki = esign.site_pki()
    report = assess_pdf(
        data, trust_roots=[pki.root_certificate], timestamp_trust_roots=[ca.root], **current_status(pki, data)
    )
    assert [(s.signer_name, s.indication, s.level) for s in report.signatures] == [
        (ANNA["name"], "TOTAL-PASSED", "B-LTA")
    ]
    assert [s.indication for s in report.document_timestamps] == ["TOTAL-PASSED"]
    assert esign.validate_case(case).all_valid

    # "Validera" on the case: the configured root makes the external timestamps count.
    page = requests.get(f"{case.absolute_url()}/@@esign-validate", auth=OFFICER, timeout=60)
    assert page.status_code == 200
    assert set(re.findall(r'data-indication="([A-Z-]+)"', page.text)) == {"TOTAL-PASSED"}
    assert "Alla underskrifter är giltiga." in page.text
    api.portal.set_registry_record("esign.tsa_trust_roots", "")
    transaction.commit()
    page = requests.get(f"{case.absolute_url()}/@@esign-validate", auth=OFFICER, timeout=60)
    assert "Alla underskrifter är giltiga." not in page.text


def test_without_its_root_the_external_tsa_signs_nothing_and_the_signer_is_told_to_try_later(
    site, tester, external_tsa, asked_of_the_site, pdf_bytes
):
    _ca, server = external_tsa
    uid = sent_case_uid(Officer(site.absolute_url()), pdf_bytes, [ANNA], title="Avtal utan betrodd TSA")
    issued = len(SiteCertificateRegistry())

    failed = sign_over_rest(site, tester, uid)
    assert failed.status_code == 503, failed.text
    assert failed.json() == {"error": {"type": "SigningError", "message": cases.SIGNING_FAILED}}
    assert ("POST", "/esign-pki/tsa") in server.requests  # the TSA answered; its chain is not trusted
    case = refresh(site, uid)
    assert esign.state_of(case) == "awaiting_signature"
    assert case.signed_document is None and case.signer_records[0].status == "pending"
    assert len(SiteCertificateRegistry()) == issued  # the one-time certificate went with it
    assert asked_of_the_site == []


def _control_panel_form(session: requests.Session, site) -> tuple[str, dict]:
    form = session.get(site.absolute_url() + "/@@esign-controlpanel", timeout=30).text
    tag = re.search(r'<input[^>]*name="_authenticator"[^>]*>', form).group(0)
    return form, {
        "_authenticator": re.search(r'value="([^"]+)"', tag).group(1),
        "form.widgets.organisation_name": "Region Test",
        "form.widgets.max_document_size_mb": "50",
        "form.widgets.key_algorithm:list": "ec-p256",
        "form.widgets.key_algorithm-empty-marker": "1",
        "form.widgets.certificate_validity_minutes": "10",
        "form.widgets.session_idle_minutes": "15",
        "form.widgets.link_validity_days": "30",
        "form.widgets.pades_level:list": "B-LTA",
        "form.widgets.pades_level-empty-marker": "1",
        "form.widgets.tsa_certificate_years": "6",
        "form.widgets.archive_renewal_days": "365",
        "form.buttons.save": "Save",
    }


@pytest.mark.parametrize(
    "value",
    ["not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"],
    ids=["text", "broken-pem"],
)
def test_the_control_panel_refuses_trust_roots_that_are_not_pem_certificates(site, value):
    from plone.app.testing import SITE_OWNER_NAME, SITE_OWNER_PASSWORD

    session = requests.Session()
    session.auth = (SITE_OWNER_NAME, SITE_OWNER_PASSWORD)
    _form, data = _control_panel_form(session, site)
    response = session.post(
        site.absolute_url() + "/@@esign-controlpanel",
        data={**data, "form.widgets.tsa_trust_roots": value},
        timeout=30,
    )
    assert response.status_code == 200
    assert "Rotcertifikaten kan inte läsas" in response.text
    assert "Traceback" not in response.text
    site._p_jar.sync()
    assert not api.portal.get_registry_record("esign.tsa_trust_roots")
    assert api.portal.get_registry_record("esign.organisation_name") != "Region Test"  # nothing saved


def test_the_control_panel_keeps_the_pem_of_the_external_tsas_root(site):
    from plone.app.testing import SITE_OWNER_NAME, SITE_OWNER_PASSWORD

    from esign.plone.sitepki import tsa_trust_roots

    ca = ThrowawayCA.create()
    pem = ca.root.public_bytes(serialization.Encoding.PEM).decode()
    session = requests.Session()
    session.auth = (SITE_OWNER_NAME, SITE_OWNER_PASSWORD)
    _form, data = _control_panel_form(session, site)
    response = session.post(
        site.absolute_url() + "/@@esign-controlpanel",
        data={**data, "form.widgets.tsa_trust_roots": pem},
        timeout=30,
    )
    assert response.status_code == 200
    assert "Rotcertifikaten kan inte läsas" not in response.text
    site._p_jar.sync()
    assert tsa_trust_roots() == (ca.root,)


def test_the_environment_names_a_pem_file_that_goes_before_the_control_panel(
    site, tmp_path, monkeypatch, caplog
):
    from esign.plone.sitepki import tsa_trust_roots

    ours, theirs = ThrowawayCA.create(), ThrowawayCA.create()
    api.portal.set_registry_record(
        "esign.tsa_trust_roots", ours.root.public_bytes(serialization.Encoding.PEM).decode()
    )
    path = tmp_path / "tsa-roots.pem"
    path.write_bytes(
        theirs.root.public_bytes(serialization.Encoding.PEM)
        + theirs.issuing.public_bytes(serialization.Encoding.PEM)
    )
    monkeypatch.setenv("ESIGN_TSA_TRUST_ROOTS", str(path))
    assert tsa_trust_roots() == (theirs.root, theirs.issuing)

    monkeypatch.setenv("ESIGN_TSA_TRUST_ROOTS", str(tmp_path / "missing.pem"))
    assert tsa_trust_roots() == ()
    assert "trust roots" in caplog.text and "missing.pem" in caplog.text
