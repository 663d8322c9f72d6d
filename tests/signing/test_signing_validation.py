"""Validation tells a changed document, a foreign signer and an old signature apart."""

from __future__ import annotations

import datetime as dt
import io
import time

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from esign.plone.errors import CorruptPdf
from esign.plone.signing import SigningProfile, SitePKI, VerifiedIdentity, sign_pdf_bytes, validate_pdf
from helpers.pdfs import PAGE_TEXT, TestDocuments


@pytest.fixture(scope="module")
def signed(documents: TestDocuments, pki: SitePKI, tolvan: VerifiedIdentity) -> bytes:
    return sign_pdf_bytes(documents.data("reportlab"), identity=tolvan, pki=pki)[0]


def test_a_byte_changed_inside_the_signed_content_breaks_the_signature(signed: bytes, pki: SitePKI) -> None:
    text = PAGE_TEXT.encode()
    assert signed.count(text) == 1
    tampered = signed.replace(text, text.replace(b"Beslut", b"Beslot"))
    (report,) = validate_pdf(tampered, trust_roots=[pki.root_certificate]).signatures
    assert not report.intact
    assert not report.bottom_line
    assert "changed after signing" in report.problems[0]


def test_page_content_added_after_signing_is_reported_as_a_disallowed_change(
    signed: bytes, pki: SitePKI
) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    overlay = generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 600 Td (Avslag) Tj ET")
    writer.add_stream_to_page(0, writer.add_object(overlay))
    changed = io.BytesIO()
    writer.write(changed)
    (report,) = validate_pdf(changed.getvalue(), trust_roots=[pki.root_certificate]).signatures
    assert report.intact and report.valid and report.trusted
    assert report.modification_level == "OTHER"
    assert not report.unmodified_since
    assert not report.bottom_line
    assert report.coverage == "entire revision"


def test_a_signature_under_another_root_is_intact_but_not_trusted(
    signed: bytes, documents: TestDocuments
) -> None:
    documents.path("presigned")
    (report,) = validate_pdf(signed, trust_roots=[documents.foreign_root]).signatures
    assert (report.intact, report.valid, report.trusted, report.bottom_line) == (True, True, False, False)
    assert any("trusted root" in p for p in report.problems)


def test_a_signature_stays_valid_after_its_one_time_certificate_has_expired(
    documents: TestDocuments, pki: SitePKI, tolvan: VerifiedIdentity
) -> None:
    profile = SigningProfile(certificate_validity=dt.timedelta(seconds=1))
    data, result = sign_pdf_bytes(documents.data("reportlab"), identity=tolvan, pki=pki, profile=profile)
    time.sleep(1.2)
    (report,) = validate_pdf(data, trust_roots=[pki.root_certificate]).signatures
    assert report.bottom_line
    assert report.signing_time is not None
    assert abs(report.signing_time - result.signed_at) < dt.timedelta(seconds=2)


def test_an_unsigned_document_has_no_valid_signatures(documents: TestDocuments, pki: SitePKI) -> None:
    report = validate_pdf(documents.data("fpdf2"), trust_roots=[pki.root_certificate])
    assert report.signatures == () and not report.all_valid


def test_a_file_that_is_not_a_pdf_cannot_be_validated(documents: TestDocuments, pki: SitePKI) -> None:
    with pytest.raises(CorruptPdf):
        validate_pdf(documents.data("not-a-pdf"), trust_roots=[pki.root_certificate])
