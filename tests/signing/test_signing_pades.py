"""Signing: every signer gets a one-time certificate; independent tools accept the result."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.reader import PdfFileReader

from esign.plone.errors import SigningError
from esign.plone.signing import (
    SigningProfile,
    SitePKI,
    VerifiedIdentity,
    sign_pdf,
    sign_pdf_bytes,
    validate_pdf,
)
from helpers.pdfs import FOREIGN_SIGNER, GOOD_KINDS, TestDocuments
from helpers.validators import pdfsig, qpdf_check


def _signer_certificates(data: bytes) -> list[x509.Certificate]:
    reader = PdfFileReader(io.BytesIO(data))
    return [x509.load_der_x509_certificate(s.signer_cert.dump()) for s in reader.embedded_signatures]


def _serial_number(certificate: x509.Certificate) -> str:
    return certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value


@pytest.fixture(scope="module")
def signed_twice(
    tmp_path_factory: pytest.TempPathFactory, documents: TestDocuments, pki: SitePKI, tolvan, agda
) -> Path:
    once, _ = sign_pdf_bytes(documents.data("fpdf2"), identity=tolvan, pki=pki)
    twice, _ = sign_pdf_bytes(once, identity=agda, pki=pki)
    path = tmp_path_factory.mktemp("signed") / "twice.pdf"
    path.write_bytes(twice)
    return path


def test_two_signers_in_turn_give_two_valid_trusted_signatures_in_pdfsig(
    signed_twice: Path, pki: SitePKI
) -> None:
    first, second = pdfsig(signed_twice, pki.root_certificate)
    for signature in (first, second):
        assert signature["signature"] == "Signature is Valid."
        assert signature["certificate"] == "Certificate is Trusted."
        assert signature["type"] == "ETSI.CAdES.detached"
    assert (first["field"], first["signer"]) == ("Signature1", "Tolvan Tolvansson")
    assert (second["field"], second["signer"]) == ("Signature2", "Agda Andersson")
    assert first["total"] is False and second["total"] is True
    assert qpdf_check(signed_twice)[0]


def test_each_signature_has_its_own_one_time_certificate_naming_the_person(signed_twice: Path) -> None:
    first, second = _signer_certificates(signed_twice.read_bytes())
    assert first.serial_number != second.serial_number
    assert first.public_key().public_numbers() != second.public_key().public_numbers()
    assert _serial_number(first) == "PNOSE-191212121212"
    assert _serial_number(second) == "PNOSE-194911172296"


def test_our_own_validation_agrees_and_the_first_signature_saw_only_a_later_signature(
    signed_twice: Path, pki: SitePKI
) -> None:
    report = validate_pdf(signed_twice.read_bytes(), trust_roots=[pki.root_certificate])
    assert report.all_valid
    first, second = report.signatures
    assert (first.coverage, first.modification_level) == ("entire revision", "FORM_FILLING")
    assert (second.coverage, second.modification_level) == ("entire file", "NONE")
    assert first.signer_serial_number == "PNOSE-191212121212"
    assert second.issuer_subject == pki.issuing_certificate.subject.rfc4514_string()


@pytest.mark.parametrize("kind", GOOD_KINDS)
def test_documents_from_every_producer_sign_and_validate_everywhere(
    tmp_path: Path, documents: TestDocuments, pki: SitePKI, tolvan: VerifiedIdentity, kind: str
) -> None:
    target = tmp_path / f"{kind}-signed.pdf"
    with documents.path(kind).open("rb") as source, target.open("w+b") as output:
        result = sign_pdf(source, output, identity=tolvan, pki=pki)
    ours = pdfsig(target, pki.root_certificate)[-1]
    assert (ours["signature"], ours["certificate"], ours["total"]) == (
        "Signature is Valid.",
        "Certificate is Trusted.",
        True,
    )
    ok, output = qpdf_check(target)
    assert ok, output
    report = validate_pdf(target.read_bytes(), trust_roots=[pki.root_certificate])
    assert report.signatures[-1].bottom_line
    assert report.signatures[-1].field_name == result.field_name
    assert result.document_size == target.stat().st_size
    assert result.document_sha256 == hashlib.sha256(target.read_bytes()).hexdigest()


def test_a_foreign_signature_stays_intact_and_valid_after_ours(
    tmp_path: Path, documents: TestDocuments, pki: SitePKI, tolvan: VerifiedIdentity
) -> None:
    signed, result = sign_pdf_bytes(documents.data("presigned"), identity=tolvan, pki=pki)
    assert result.field_name == "Signature2"
    foreign, ours = validate_pdf(signed, trust_roots=[pki.root_certificate]).signatures
    assert foreign.signer_name == FOREIGN_SIGNER
    assert (foreign.intact, foreign.valid, foreign.trusted, foreign.bottom_line) == (True, True, False, False)
    assert foreign.unmodified_since
    assert ours.bottom_line
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    foreign_in_pdfsig = pdfsig(path, documents.foreign_root)[0]
    assert foreign_in_pdfsig["signature"] == "Signature is Valid."
    assert foreign_in_pdfsig["certificate"] == "Certificate is Trusted."


def test_the_rsa_3072_profile_signs_with_a_3072_bit_one_time_key(
    tmp_path: Path, documents: TestDocuments, pki: SitePKI, tolvan: VerifiedIdentity
) -> None:
    profile = SigningProfile(key_algorithm="rsa-3072", reason="Godkänt", location="Sundsvall")
    signed, result = sign_pdf_bytes(documents.data("reportlab"), identity=tolvan, pki=pki, profile=profile)
    key = x509.load_der_x509_certificate(result.certificate_der).public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    path = tmp_path / "rsa.pdf"
    path.write_bytes(signed)
    assert pdfsig(path, pki.root_certificate)[0]["signature"] == "Signature is Valid."
    assert validate_pdf(signed, trust_roots=[pki.root_certificate]).all_valid


def test_name_reason_location_and_field_name_appear_in_the_signature(
    documents: TestDocuments, pki: SitePKI, tolvan: VerifiedIdentity
) -> None:
    profile = SigningProfile(field_name="Beslut", reason="Jag godkänner beslutet", location="Umeå")
    signed, result = sign_pdf_bytes(documents.data("form"), identity=tolvan, pki=pki, profile=profile)
    (embedded,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    assert embedded.field_name == result.field_name == "Beslut"
    assert embedded.sig_object["/Name"] == "Tolvan Tolvansson"
    assert embedded.sig_object["/Reason"] == "Jag godkänner beslutet"
    assert embedded.sig_object["/Location"] == "Umeå"
    assert result.certificate_subject.startswith("CN=Tolvan Tolvansson")


def test_the_original_bytes_are_kept_as_they_were(documents: TestDocuments, pki: SitePKI, agda) -> None:
    original = documents.data("presigned")
    signed, result = sign_pdf_bytes(original, identity=agda, pki=pki)
    assert signed.startswith(original)
    assert result.document_sha256 == hashlib.sha256(signed).hexdigest()
    assert result.document_size == len(signed)


def test_a_large_document_is_streamed_from_file_to_file_without_holding_it_in_memory(
    tmp_path: Path, documents: TestDocuments, pki: SitePKI, tolvan: VerifiedIdentity
) -> None:
    source_path, target = documents.big(8 * 10**6), tmp_path / "big-signed.pdf"
    with source_path.open("rb") as source, target.open("w+b") as output:
        tracemalloc.start()
        try:
            result = sign_pdf(source, output, identity=tolvan, pki=pki)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 4 * 2**20, f"signing an 8 MB file peaked at {peak / 2**20:.1f} MiB of Python memory"
    data = target.read_bytes()
    assert result.document_sha256 == hashlib.sha256(data).hexdigest()
    assert validate_pdf(data, trust_roots=[pki.root_certificate]).all_valid
    assert qpdf_check(target)[0]


def test_signing_writes_nothing_but_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, documents: TestDocuments, pki: SitePKI, tolvan
) -> None:
    work, scratch = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    source = documents.data("reportlab")
    output = io.BytesIO()
    result = sign_pdf(source, output, identity=tolvan, pki=pki)
    assert os.listdir(work) == [] and os.listdir(scratch) == []
    signed = output.getvalue()
    assert b"PRIVATE KEY" not in signed
    assert not any(b"PRIVATE KEY" in v for v in dataclasses.astuple(result) if isinstance(v, bytes))
    assert "PRIVATE" not in repr(result)


class _WriteOnly(io.RawIOBase):
    """Like a ZODB blob opened with ``"w"``: no reading back, no seeking."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)


def test_a_write_only_output_receives_the_same_signed_file(
    documents: TestDocuments, pki: SitePKI, tolvan: VerifiedIdentity
) -> None:
    sink = _WriteOnly()
    result = sign_pdf(documents.data("fpdf2"), sink, identity=tolvan, pki=pki)
    signed = b"".join(sink.parts)
    assert result.document_size == len(signed)
    assert result.document_sha256 == hashlib.sha256(signed).hexdigest()
    assert validate_pdf(signed, trust_roots=[pki.root_certificate]).all_valid


def test_a_file_that_is_not_a_pdf_cannot_be_signed(documents: TestDocuments, pki: SitePKI, tolvan) -> None:
    with pytest.raises(SigningError):
        sign_pdf_bytes(documents.data("not-a-pdf"), identity=tolvan, pki=pki)
