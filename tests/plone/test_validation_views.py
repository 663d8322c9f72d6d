""" "Validera" on a case and the public validation page, over real HTTP."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
import requests
import transaction
from plone import api
from plone.app.testing import SITE_OWNER_NAME, SITE_OWNER_PASSWORD
from plone.namedfile.file import NamedBlobFile

from esign.plone import api as esign
from helpers import pdfs
from helpers.site import ANNA, BERTIL, identity_of

OFFICER = ("officer", "officer-secret-1")
MEMBER = ("member", "member-secret-1")
VR = "{http://uri.etsi.org/19102/v1.2.1#}"


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    return pdfs.TestDocuments(tmp_path_factory.mktemp("docs"))


@pytest.fixture()
def site(functional_portal):
    officer = api.user.create(email="officer@regionen.se", username=OFFICER[0], password=OFFICER[1])
    api.user.grant_roles(user=officer, roles=["SigningOfficer", "Member"])
    api.user.create(email="member@regionen.se", username=MEMBER[0], password=MEMBER[1])
    transaction.commit()
    return functional_portal


@pytest.fixture()
def new_case(site, pdf_bytes):
    """A case of the officer's, signed by ``signers`` (none: a draft); committed."""

    def factory(*, signers=(ANNA, BERTIL)):
        with api.env.adopt_user(username=OFFICER[0]):
            case = api.content.create(
                container=site,
                type="SigningCase",
                title="Avtal om vårdtjänster",
                information_class="K2",
                document=NamedBlobFile(pdf_bytes, filename="avtal.pdf", contentType="application/pdf"),
                signers=[dict(ANNA), dict(BERTIL)],
            )
            if signers:
                esign.send_case(case)
                for row in signers:
                    record = next(
                        r for r in case.signer_records if r.personal_number == row["personal_number"]
                    )
                    esign.sign_case(case, signer_id=record.signer_id, identity=identity_of(row))
        transaction.commit()
        return case

    return factory


_SIGNED: list[bytes] = []


@pytest.fixture()
def signed_pdf(new_case) -> bytes:
    """A document the add-on signed (B-LTA, two signers); made once, the site PKI is the session's."""
    if not _SIGNED:
        _SIGNED.append(new_case().signed_document.data)
    return _SIGNED[0]


def rows(html: str) -> list[str]:
    return re.findall(r'<tr class="esign-validation-row".*?</tr>', html, re.S)


def indications(html: str) -> list[str]:
    return re.findall(r'<tr class="esign-validation-row"[^>]*data-indication="([A-Z-]+)"', html)


def signature_reports(xml: bytes) -> list[str]:
    """The MainIndication of each SignatureValidationReport of an ETSI TS 119 102-2 report."""
    root = ET.fromstring(xml)  # noqa: S314 - the report our own code made
    assert root.tag == f"{VR}ValidationReport"
    return [
        report.find(f"{VR}SignatureValidationStatus/{VR}MainIndication").text.rsplit(":", 1)[-1]
        for report in root.findall(f"{VR}SignatureValidationReport")
    ]


def tampered(data: bytes) -> bytes:
    """One byte of the page text changed: the file still parses, every signature covers the byte."""
    changed = bytearray(data)
    at = changed.index(b"stream") + 12
    changed[at] ^= 0x01
    return bytes(changed)


class PublicPage:
    """An anonymous visitor on the public validation page, with the form's CSRF cookie and token."""

    def __init__(self, site) -> None:
        self.url = f"{site.absolute_url()}/@@esign-validera"
        self.session = requests.Session()
        form = self.session.get(self.url, timeout=30)
        assert form.status_code == 200
        tag = re.search(r'<input[^>]*name="_esign_csrf"[^>]*>', form.text).group(0)
        self.token = re.search(r'value="([^"]+)"', tag).group(1)
        self.form = form.text

    def upload(self, data: bytes | None, *, button: str = "validate", token: str | None = None, **kw):
        fields = {"_esign_csrf": self.token if token is None else token, button: "1"}
        files = {"file": ("dokument.pdf", data, "application/pdf")} if data is not None else None
        return self.session.post(self.url, data=fields, files=files, timeout=60, **kw)


# -- "Validera" on the case ----------------------------------------------------------------------


def test_the_officer_validates_the_case_and_sees_one_passed_row_per_signer(new_case):
    case = new_case()
    response = requests.get(f"{case.absolute_url()}/@@esign-validate", auth=OFFICER, timeout=60)
    assert response.status_code == 200
    html = response.text
    assert "Validera" in html
    assert indications(html) == ["TOTAL-PASSED", "TOTAL-PASSED"]
    for row, person in zip(rows(html), (ANNA, BERTIL), strict=True):
        assert person["name"] in row
        assert f"PNOSE-{person['personal_number']}" in row
        assert "PAdES B-LTA" in row
        assert "enligt tidsstämpel" in row
        assert "Underskriften är giltig." in row
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CE", row), row
    assert "Alla underskrifter är giltiga." in html
    assert 'class="esign-validation-timestamp"' in html  # the B-LTA document timestamp
    assert "@@esign-validate?format=xml" in html


def test_the_case_report_downloads_as_etsi_xml(new_case):
    case = new_case()
    response = requests.get(
        f"{case.absolute_url()}/@@esign-validate", params={"format": "xml"}, auth=OFFICER, timeout=60
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/xml")
    assert "attachment" in response.headers["Content-Disposition"]
    assert signature_reports(response.content) == ["total-passed", "total-passed"]


def test_before_anyone_signs_the_page_says_there_is_nothing_to_validate(new_case):
    case = new_case(signers=())
    response = requests.get(f"{case.absolute_url()}/@@esign-validate", auth=OFFICER, timeout=60)
    assert response.status_code == 200
    assert "Ingen har skrivit under dokumentet ännu" in response.text
    assert rows(response.text) == []
    xml = requests.get(
        f"{case.absolute_url()}/@@esign-validate", params={"format": "xml"}, auth=OFFICER, timeout=60
    )
    assert xml.status_code == 404
    assert not xml.headers["Content-Type"].startswith("application/xml")


@pytest.mark.parametrize("auth", [None, MEMBER], ids=["anonymous", "another-member"])
def test_someone_who_may_not_see_the_case_cannot_validate_it(new_case, auth):
    case = new_case()
    for params in ({}, {"format": "xml"}):
        response = requests.get(
            f"{case.absolute_url()}/@@esign-validate",
            params=params,
            auth=auth,
            timeout=60,
            allow_redirects=False,
        )
        assert response.status_code in (302, 401, 403, 404)
        assert ANNA["name"] not in response.text
        assert "PNOSE" not in response.text


def test_a_case_whose_signed_document_was_tampered_with_shows_total_failed(new_case):
    case = new_case()
    case.signed_document = NamedBlobFile(
        tampered(case.signed_document.data), filename="x.pdf", contentType="application/pdf"
    )
    transaction.commit()
    html = requests.get(f"{case.absolute_url()}/@@esign-validate", auth=OFFICER, timeout=60).text
    assert set(indications(html)) == {"TOTAL-FAILED"}
    assert "HASH_FAILURE" in html
    assert "Dokumentet har ändrats efter underskriften." in html


# -- the public page -------------------------------------------------------------------------------


def test_the_public_page_offers_an_upload_form_to_anyone(site):
    page = PublicPage(site)
    assert "Validera ett underskrivet dokument" in page.form
    assert 'enctype="multipart/form-data"' in page.form
    assert 'type="file"' in page.form
    assert "Ladda ner valideringsrapport (XML)" in page.form
    assert page.session.cookies.get("__esign_csrf") == page.token


def test_an_anonymous_upload_of_a_signed_document_shows_each_signature_as_passed(site, signed_pdf):
    response = PublicPage(site).upload(signed_pdf)
    assert response.status_code == 200
    assert indications(response.text) == ["TOTAL-PASSED", "TOTAL-PASSED"]
    assert ANNA["name"] in response.text and BERTIL["name"] in response.text
    assert "PAdES B-LTA" in response.text
    assert "Alla underskrifter är giltiga." in response.text


def test_an_upload_is_never_stored(site, signed_pdf):
    # Plone writes once on the first request after a commit (lazy set-up, whatever the
    # page); the form is fetched before counting.
    page = PublicPage(site)
    site._p_jar.sync()
    storage = site._p_jar.db().storage
    before = storage.lastTransaction()
    catalog_before = len(api.portal.get_tool("portal_catalog")(portal_type="SigningCase"))
    for button in ("validate", "xml"):
        assert page.upload(signed_pdf, button=button).status_code == 200
    assert page.upload(b"not a pdf at all").status_code == 400
    site._p_jar.sync()
    assert storage.lastTransaction() == before, "the validation page wrote to the database"
    assert len(api.portal.get_tool("portal_catalog")(portal_type="SigningCase")) == catalog_before


def test_a_tampered_copy_is_reported_total_failed(site, signed_pdf):
    response = PublicPage(site).upload(tampered(signed_pdf))
    assert response.status_code == 200
    assert set(indications(response.text)) == {"TOTAL-FAILED"}
    assert "HASH_FAILURE" in response.text
    assert "Dokumentet har ändrats efter underskriften." in response.text
    assert "Minst en underskrift är ogiltig." in response.text


def test_the_xml_button_returns_the_etsi_report_of_the_same_upload(site, signed_pdf):
    response = PublicPage(site).upload(signed_pdf, button="xml")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/xml")
    assert 'filename="valideringsrapport.xml"' in response.headers["Content-Disposition"]
    assert signature_reports(response.content) == ["total-passed", "total-passed"]
    tampered_report = PublicPage(site).upload(tampered(signed_pdf), button="xml")
    assert signature_reports(tampered_report.content) == ["total-failed", "total-failed"]


BAD_UPLOADS = {
    "not-a-pdf": (400, "Filen är inte ett PDF-dokument."),
    "encrypted": (400, "lösenordsskyddad eller krypterad"),
    "truncated": (400, "skadad eller ofullständig"),
}


@pytest.mark.parametrize("kind", list(BAD_UPLOADS))
def test_a_file_that_is_not_a_readable_pdf_gets_a_message_on_the_form(site, documents, kind):
    status, message = BAD_UPLOADS[kind]
    response = PublicPage(site).upload(documents.data(kind))
    assert response.status_code == status
    assert message in response.text
    assert "Traceback" not in response.text
    assert 'type="file"' in response.text  # the form is there to try again


def test_no_file_and_a_missing_csrf_token_are_refused_with_a_message(site, signed_pdf):
    page = PublicPage(site)
    empty = page.upload(None)
    assert empty.status_code == 400
    assert "Välj en PDF-fil att validera." in empty.text
    forged = page.upload(signed_pdf, token="")
    assert forged.status_code == 403
    assert "Formuläret kunde inte verifieras" in forged.text
    assert rows(forged.text) == []


def test_a_file_over_the_size_limit_is_refused(site, documents):
    api.portal.set_registry_record("esign.max_document_size_mb", 1)
    transaction.commit()
    response = PublicPage(site).upload(documents.big(2 * 1024 * 1024).read_bytes())
    assert response.status_code == 413
    assert "Filen är för stor" in response.text and "1 MB" in response.text


def test_a_pdf_without_signatures_is_reported_as_such(site, documents):
    page = PublicPage(site)
    response = page.upload(documents.data("reportlab"))
    assert response.status_code == 200
    assert "Dokumentet innehåller inga underskrifter." in response.text
    assert rows(response.text) == []
    xml = page.upload(documents.data("reportlab"), button="xml")
    assert not xml.headers["Content-Type"].startswith("application/xml")
    assert "ingen valideringsrapport" in xml.text


def test_a_signature_from_another_ca_is_indeterminate(site, documents):
    response = PublicPage(site).upload(documents.data("presigned"))
    assert indications(response.text) == ["INDETERMINATE"]
    assert "NO_CERTIFICATE_CHAIN_FOUND" in response.text
    assert pdfs.FOREIGN_SIGNER in response.text


def test_the_site_manager_can_use_the_public_page_too(site, signed_pdf):
    page = PublicPage(site)
    page.session.auth = (SITE_OWNER_NAME, SITE_OWNER_PASSWORD)
    response = page.upload(signed_pdf)
    assert response.status_code == 200
    assert indications(response.text) == ["TOTAL-PASSED", "TOTAL-PASSED"]
