"""Seals: the organisation, not a person, signs a document the site issues."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID
from pyhanko.pdf_utils.reader import PdfFileReader

from esign.plone.errors import SigningError
from esign.plone.signing import SitePKI, seal_pdf, sign_pdf_bytes, validate_pdf
from helpers.pdfs import TestDocuments
from helpers.people import ORGANISATION, PASSPHRASE
from helpers.validators import pdfsig, qpdf_check


def _seal_certificate(data: bytes) -> x509.Certificate:
    (signature,) = PdfFileReader(io.BytesIO(data)).embedded_signatures
    return x509.load_der_x509_certificate(signature.signer_cert.dump())


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory, documents: TestDocuments, pki: SitePKI) -> Path:
    output = io.BytesIO()
    seal_pdf(documents.data("reportlab"), output, pki=pki, organisation=ORGANISATION)
    path = tmp_path_factory.mktemp("sealed") / "sealed.pdf"
    path.write_bytes(output.getvalue())
    return path


def test_pdfsig_accepts_the_seal_as_valid_and_trusted_under_the_site_root(sealed: Path, pki: SitePKI) -> None:
    (signature,) = pdfsig(sealed, pki.root_certificate)
    assert signature["signature"] == "Signature is Valid."
    assert signature["certificate"] == "Certificate is Trusted."
    assert signature["type"] == "ETSI.CAdES.detached"
    assert signature["signer"] == f"{ORGANISATION} – E-underskrift"
    assert signature["total"] is True
    assert qpdf_check(sealed)[0]


def test_the_seal_certificate_names_the_organisation_and_no_person(sealed: Path, pki: SitePKI) -> None:
    certificate = _seal_certificate(sealed.read_bytes())
    subject = certificate.subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == ORGANISATION
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"{ORGANISATION} – E-underskrift"
    assert subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "SE"
    assert not subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    assert not subject.get_attributes_for_oid(NameOID.GIVEN_NAME)
    assert certificate.issuer == pki.issuing_certificate.subject
    usage = certificate.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign


def test_our_own_validation_finds_one_valid_seal_by_the_organisation(sealed: Path, pki: SitePKI) -> None:
    report = validate_pdf(sealed.read_bytes(), trust_roots=[pki.root_certificate])
    assert report.all_valid
    (seal,) = report.signatures
    assert seal.signer_name == f"{ORGANISATION} – E-underskrift"
    assert seal.signer_serial_number == ""
    assert seal.coverage == "entire file"


def test_the_result_describes_the_sealed_file_and_its_certificate(
    documents: TestDocuments, pki: SitePKI
) -> None:
    output = io.BytesIO()
    result = seal_pdf(documents.data("fpdf2"), output, pki=pki, organisation=ORGANISATION)
    data = output.getvalue()
    assert result.document_sha256 == hashlib.sha256(data).hexdigest()
    assert result.document_size == len(data)
    assert result.field_name == "Signature1"
    assert result.certificate_serial == f"{_seal_certificate(data).serial_number:x}"
    assert f"O={ORGANISATION}" in result.certificate_subject


def test_a_seal_made_at_a_given_moment_validates_at_that_moment(
    tmp_path: Path, documents: TestDocuments
) -> None:
    now = dt.datetime.now(dt.UTC)
    pki = SitePKI.create(
        tmp_path / "pki", passphrase=PASSPHRASE, organisation=ORGANISATION, now=now - dt.timedelta(days=365)
    )
    moment = now - dt.timedelta(days=30)
    output = io.BytesIO()
    result = seal_pdf(documents.data("reportlab"), output, pki=pki, organisation=ORGANISATION, now=moment)
    assert result.signed_at == moment
    (seal,) = validate_pdf(output.getvalue(), trust_roots=[pki.root_certificate]).signatures
    assert seal.bottom_line
    assert abs(seal.signing_time - moment) < dt.timedelta(seconds=1)


def test_a_document_already_signed_by_a_person_keeps_that_signature_under_the_seal(
    documents: TestDocuments, pki: SitePKI, tolvan
) -> None:
    signed, _ = sign_pdf_bytes(documents.data("reportlab"), identity=tolvan, pki=pki)
    output = io.BytesIO()
    result = seal_pdf(signed, output, pki=pki, organisation=ORGANISATION)
    assert result.field_name == "Signature2"
    report = validate_pdf(output.getvalue(), trust_roots=[pki.root_certificate])
    assert report.all_valid
    assert [s.signer_name for s in report.signatures] == [
        "Tolvan Tolvansson",
        f"{ORGANISATION} – E-underskrift",
    ]


def test_a_long_organisation_name_still_gives_a_valid_common_name(
    documents: TestDocuments, pki: SitePKI
) -> None:
    name = "Samordningsförbundet för rehabilitering i Västmanland"
    output = io.BytesIO()
    seal_pdf(documents.data("reportlab"), output, pki=pki, organisation=name)
    common_name = _seal_certificate(output.getvalue()).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert len(common_name[0].value.encode()) <= 64
    assert common_name[0].value.endswith(" – E-underskrift")


def test_a_seal_without_an_organisation_is_refused(documents: TestDocuments, pki: SitePKI) -> None:
    with pytest.raises(SigningError):
        seal_pdf(documents.data("reportlab"), io.BytesIO(), pki=pki, organisation="  ")


def test_a_file_that_is_not_a_pdf_cannot_be_sealed(documents: TestDocuments, pki: SitePKI) -> None:
    with pytest.raises(SigningError):
        seal_pdf(documents.data("not-a-pdf"), io.BytesIO(), pki=pki, organisation=ORGANISATION)
