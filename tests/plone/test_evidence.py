"""The evidence document ("Signeringsbevis"): made on completion, sealed by the site, for the officer."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
import transaction
from plone import api
from plone.app.testing import login, logout
from plone.namedfile.file import NamedBlobFile
from zExceptions import NotFound, Unauthorized

from esign.plone import api as esign
from esign.plone import audit
from esign.plone.evidence import create_evidence
from esign.plone.signing import validate_pdf
from esign.plone.sitepki import site_pki
from helpers.site import ANNA, BERTIL, STAFF, identity_of
from helpers.validators import pdfsig


def _sign(case, row) -> None:
    key = row.get("personal_number") or row.get("hsa_id")
    record = next(r for r in case.signer_records if key in (r.personal_number, r.hsa_id))
    esign.sign_case(
        case, signer_id=record.signer_id, identity=identity_of(row), evidence={"order_ref": "order-0001"}
    )


def _text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture()
def signed_case(portal, officer, make_case):
    login(portal, "officer")
    case = make_case(title="Avtal om vårdtjänster 2026", case_number="RS 2026/117")
    esign.send_case(case)
    _sign(case, ANNA)
    _sign(case, BERTIL)
    return case


@pytest.fixture()
def evidence_file(signed_case, tmp_path) -> Path:
    path = tmp_path / signed_case.evidence_document.filename
    path.write_bytes(signed_case.evidence_document.data)
    return path


def test_completing_a_case_stores_a_sealed_evidence_pdf_beside_the_signed_document(signed_case):
    assert esign.state_of(signed_case) == "signed"
    evidence = signed_case.evidence_document
    assert evidence.filename == "avtal-signeringsbevis.pdf"
    assert evidence.contentType == "application/pdf"
    assert evidence.data.startswith(b"%PDF")


def test_the_evidence_names_the_case_the_document_and_both_signers_in_swedish(signed_case, evidence_file):
    text = _text(evidence_file)
    assert "Signeringsbevis" in text
    assert "Avtal om vårdtjänster 2026" in text
    assert "RS 2026/117" in text and "K2" in text
    assert "avtal.pdf" in text and "avtal-signerad.pdf" in text
    with signed_case.signed_document.open() as reader:
        assert hashlib.sha256(reader.read()).hexdigest() in text
    for row in (ANNA, BERTIL):
        assert row["name"] in text
    assert "19121212-****" in text and "19491117-****" in text
    assert "BankID" in text and "order-0001" in text
    assert "http://id.elegnamnden.se/loa/1.0/loa3" in text


def test_the_evidence_shows_no_full_personnummer_anywhere(signed_case, evidence_file):
    text = _text(evidence_file)
    for number in (ANNA["personal_number"], BERTIL["personal_number"]):
        assert number not in text
        assert number[2:] not in text
        assert f"PNOSE-{number}" not in text
    assert "serialNumber=PNOSE-19121212-****" in text
    assert ANNA["personal_number"].encode() not in signed_case.evidence_document.data


def test_the_evidence_states_the_audit_trails_head_hash_at_completion(signed_case, evidence_file):
    # Completion mails are logged after the evidence is sealed: it speaks of the "completed" entry.
    completed = next(e for e in audit.entries(signed_case) if e.event == "completed")
    text = _text(evidence_file)
    assert completed.hash in text
    assert re.search(r"Antal poster +(\d+)", text).group(1) == str(completed.seq)
    assert "Obruten" in text
    assert audit.verify(signed_case).ok


def test_pdfsig_validates_the_sites_seal_on_the_evidence(functional_portal, pdf_bytes, tmp_path):
    with api.env.adopt_roles(["Manager"]):
        case = api.content.create(
            container=functional_portal,
            type="SigningCase",
            title="Avtal",
            information_class="K2",
            document=NamedBlobFile(pdf_bytes, filename="avtal.pdf", contentType="application/pdf"),
            signers=[dict(ANNA), dict(BERTIL)],
        )
        esign.send_case(case)
        _sign(case, ANNA)
        _sign(case, BERTIL)
    transaction.commit()  # pdfsig asks the site's OCSP responder about the seal certificate
    evidence_file = tmp_path / "evidence.pdf"
    evidence_file.write_bytes(case.evidence_document.data)
    (seal,) = pdfsig(evidence_file, site_pki().root_certificate)
    assert seal["signature"] == "Signature is Valid."
    assert seal["certificate"] == "Certificate is Trusted."
    assert seal["signer"].endswith("– E-underskrift")
    report = validate_pdf(evidence_file.read_bytes(), trust_roots=[site_pki().root_certificate])
    assert report.all_valid
    assert report.signatures[0].signer_serial_number == ""


def test_the_evidence_is_made_once(signed_case):
    first = signed_case.evidence_document
    assert create_evidence(signed_case) is first


def test_the_officer_downloads_the_evidence_from_the_case_page(signed_case):
    assert "@@esign-evidence" in signed_case.restrictedTraverse("@@view")()
    request = signed_case.REQUEST
    data = signed_case.restrictedTraverse("@@esign-evidence")()
    body = data if isinstance(data, bytes) else b"".join(data)
    assert body == signed_case.evidence_document.data
    assert request.response.getHeader("Content-Type") == "application/pdf"
    assert "private" in request.response.getHeader("Cache-Control")
    assert "signeringsbevis.pdf" in request.response.getHeader("Content-Disposition")


def test_an_anonymous_visitor_cannot_download_the_evidence(signed_case):
    logout()
    with pytest.raises(Unauthorized):
        signed_case.restrictedTraverse("@@esign-evidence")


def test_a_case_awaiting_signatures_has_no_evidence_yet(portal, officer, make_case):
    login(portal, "officer")
    case = make_case()
    esign.send_case(case)
    _sign(case, ANNA)
    assert getattr(case, "evidence_document", None) is None
    assert "@@esign-evidence" not in case.restrictedTraverse("@@view")()
    with pytest.raises(NotFound):
        case.restrictedTraverse("@@esign-evidence")()


def test_a_staff_signer_appears_with_hsa_id_and_siths(portal, officer, make_case, tmp_path):
    login(portal, "officer")
    case = make_case(signers=(STAFF,))
    esign.send_case(case)
    record = case.signer_records[0]
    esign.sign_case(case, signer_id=record.signer_id, identity=identity_of(STAFF, method="siths"))
    path = tmp_path / "bevis.pdf"
    path.write_bytes(case.evidence_document.data)
    text = _text(path)
    assert "SE2321000016-1003" in text and "SITHS eTjänstekort" in text
    assert "Sara Sjuksköterska" in text
    assert "orderRef" not in text
    assert api.content.get_state(case) == "signed"
