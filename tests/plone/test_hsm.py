"""A site whose issuing CA key and TSA key live in a PKCS#11 token (SoftHSM2), end to end.

The site is pointed at a new PKI folder with ``ESIGN_PKCS11_*`` set, as an operator
would configure it; installing the PKI makes the keys inside the token. A two-signer
case is then signed through the add-on and checked by ``pdfsig`` and the AdES report.
"""

from __future__ import annotations

import uuid

import pytest
import transaction
from plone import api
from plone.namedfile.file import NamedBlobFile

from esign.plone import api as esign
from esign.plone import sitepki
from esign.plone.signing.reports import assess_pdf
from helpers.site import ANNA, BERTIL, identity_of
from helpers.softhsm import softhsm_token
from helpers.validators import pdfsig, qpdf_check


@pytest.fixture()
def hsm_site(functional_portal, monkeypatch):
    token = softhsm_token()
    config = token.config
    label = f"site-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ESIGN_PKCS11_MODULE", config.module)
    monkeypatch.setenv("ESIGN_PKCS11_TOKEN", config.token_label)
    monkeypatch.setenv("ESIGN_PKCS11_PIN", config.pin)
    monkeypatch.setenv("ESIGN_PKCS11_CA_KEY_LABEL", f"{label}-issuing")
    monkeypatch.setenv("ESIGN_PKCS11_TSA_KEY_LABEL", f"{label}-tsa")
    old_id = api.portal.get_registry_record("esign.internal.pki_id")
    api.portal.set_registry_record("esign.internal.pki_id", uuid.uuid4().hex)
    sitepki._forget()
    pki = sitepki.ensure_site_pki(organisation="Region HSM")
    transaction.commit()
    yield pki
    api.portal.set_registry_record("esign.internal.pki_id", old_id)
    transaction.commit()
    sitepki._forget()


def test_a_case_signs_end_to_end_with_the_ca_and_tsa_keys_in_softhsm(
    hsm_site, functional_portal, pdf_bytes, tmp_path
):
    directory = sitepki.pki_directory()
    # The keys are in the token: no key file beside the certificates but the root's.
    assert not (directory / "issuing-key.pem").exists()
    assert not (directory / "tsa-key.pem").exists()
    assert "PKCS#11" in hsm_site.issuing_key_label

    with api.env.adopt_roles(["Manager"]):
        case = api.content.create(
            container=functional_portal,
            type="SigningCase",
            title="Avtal (HSM)",
            information_class="K2",
            document=NamedBlobFile(pdf_bytes, filename="avtal.pdf", contentType="application/pdf"),
            signers=[dict(ANNA), dict(BERTIL)],
        )
        esign.send_case(case)
        for row in (ANNA, BERTIL):
            record = next(r for r in case.signer_records if r.personal_number == row["personal_number"])
            esign.sign_case(case, signer_id=record.signer_id, identity=identity_of(row))
    transaction.commit()
    assert api.content.get_state(case) == "signed"

    path = tmp_path / "signed.pdf"
    path.write_bytes(case.signed_document.data)
    root = esign.site_pki().root_certificate
    people = [s for s in pdfsig(path, root) if s["signer"] in (ANNA["name"], BERTIL["name"])]
    assert len(people) == 2
    for signature in people:
        assert signature["signature"] == "Signature is Valid.", signature
        assert signature["certificate"] == "Certificate is Trusted.", signature
    ok, output = qpdf_check(path)
    assert ok, output

    report = assess_pdf(path.read_bytes(), trust_roots=[root])
    assert [(s.indication, s.level) for s in report.signatures] == [("TOTAL-PASSED", "B-LTA")] * 2
    # The document timestamp came from the TSA key in the token.
    (stamp,) = report.document_timestamps
    assert stamp.indication == "TOTAL-PASSED"
    assert stamp.signer_name == "Region HSM Time Stamping Authority"
