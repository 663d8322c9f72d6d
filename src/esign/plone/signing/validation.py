"""Validation of every signature embedded in a PDF, offline, against given trust roots."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import BinaryIO

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from esign.plone.errors import CorruptPdf, ValidationFailed
from esign.plone.signing.sigpage import DIFF_POLICY
from esign.plone.signing.values import SignatureReport, ValidationReport

__all__ = ["validate_pdf"]

_COVERAGE = {
    SignatureCoverageLevel.ENTIRE_FILE: "entire file",
    SignatureCoverageLevel.ENTIRE_REVISION: "entire revision",
}

# Updates that leave what the signer saw untouched: later signatures and form fields
# (FORM_FILLING; our signatures carry no DocMDP lock), and archival timestamps/DSS.
_ALLOWED_LATER_CHANGES = (
    ModificationLevel.NONE,
    ModificationLevel.LTA_UPDATES,
    ModificationLevel.FORM_FILLING,
)


def _subject_attribute(name: asn1_x509.Name, key: str) -> str:
    value = name.native.get(key, "")
    # Multi-valued attributes come back as lists.
    return ", ".join(value) if isinstance(value, list) else str(value)


def _problems(status: PdfSignatureStatus, *, unmodified_since: bool) -> tuple[str, ...]:
    problems = []
    if not status.intact:
        problems.append("The signed content has been changed after signing.")
    elif not status.valid:
        problems.append("The cryptographic signature does not verify.")
    if not status.trusted:
        indication = getattr(status, "trust_problem_indic", None)
        detail = f" ({indication.name})" if indication is not None else ""
        problems.append(f"The signer's certificate does not chain to a trusted root{detail}.")
    if status.coverage not in _COVERAGE:
        problems.append("The signature covers only part of the file.")
    if not unmodified_since:
        problems.append("The document was changed after this signature in a way that is not allowed.")
    return tuple(problems)


def _report(
    embedded: EmbeddedPdfSignature,
    *,
    trust_roots: Sequence[asn1_x509.Certificate],
    timestamp_roots: Sequence[asn1_x509.Certificate] = (),
) -> SignatureReport:
    claimed_time = embedded.self_reported_timestamp
    # Validate at the signer's claimed signing time, not "now". Our one-time
    # certificates live for minutes and a B-B signature has no timestamp token, so
    # "now" would report every signature older than that as expired. The claimed
    # time is the best evidence B-B offers; it is bound into the signed attributes
    # and the certificate must have been valid at that moment. Revocation data is
    # not fetched (offline): soft-fail, as a one-time certificate is never revoked
    # before it expires in practice.
    context = ValidationContext(
        trust_roots=list(trust_roots),
        moment=claimed_time,
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    # An external TSA's root vouches for the signature timestamp, not for the signer.
    ts_context = (
        ValidationContext(
            trust_roots=[*trust_roots, *timestamp_roots], allow_fetching=False, revocation_mode="soft-fail"
        )
        if timestamp_roots
        else None
    )
    # pyHanko's default difference policy misreads untouched, FieldMDP-locked text fields as
    # changed (see signing/sigpage.py); the signature page's policy does not.
    status = validate_pdf_signature(
        embedded, signer_validation_context=context, ts_validation_context=ts_context, diff_policy=DIFF_POLICY
    )
    level = status.modification_level
    unmodified_since = level in _ALLOWED_LATER_CHANGES and status.docmdp_ok is not False
    cert = status.signing_cert
    subject = cert.subject
    certificate = x509.load_der_x509_certificate(cert.dump())
    return SignatureReport(
        field_name=embedded.field_name,
        signer_name=_subject_attribute(subject, "common_name"),
        signer_serial_number=_subject_attribute(subject, "serial_number"),
        certificate_subject=certificate.subject.rfc4514_string(),
        certificate_serial=f"{cert.serial_number:x}",
        issuer_subject=certificate.issuer.rfc4514_string(),
        signing_time=claimed_time,
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        coverage=_COVERAGE.get(status.coverage, "partial"),
        modification_level=level.name if level is not None else "OTHER",
        unmodified_since=unmodified_since,
        bottom_line=bool(status.bottom_line) and unmodified_since,
        problems=_problems(status, unmodified_since=unmodified_since),
    )


def validate_pdf(
    source: bytes | BinaryIO,
    *,
    trust_roots: Sequence[x509.Certificate],
    timestamp_trust_roots: Sequence[x509.Certificate] = (),
) -> ValidationReport:
    """Validate every signature in a PDF, without network access.

    :param source: the PDF, as bytes or a seekable binary file object.
    :param trust_roots: the roots a signer's certificate must chain to, normally
        ``[pki.root_certificate]``. A signature from any other CA is reported
        ``trusted=False`` while ``intact``/``valid`` still say whether it is unbroken.
    :param timestamp_trust_roots: further roots for signature timestamps only (an external TSA's).
    :returns: one :class:`SignatureReport` per embedded signature, in file order.
        A PDF without signatures gives an empty report (``all_valid`` is ``False``).
    :raises CorruptPdf: when the file cannot be parsed as a PDF.
    :raises ValidationFailed: when a signature is so malformed it cannot be examined.
    """
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    roots = [
        asn1_x509.Certificate.load(root.public_bytes(serialization.Encoding.DER)) for root in trust_roots
    ]
    ts_roots = [
        asn1_x509.Certificate.load(root.public_bytes(serialization.Encoding.DER))
        for root in timestamp_trust_roots
    ]
    try:
        reader = PdfFileReader(stream, strict=False)
        # Document timestamps (B-LTA) are not signatures of a person; the AdES
        # assessment (:mod:`.reports`) covers them.
        signatures = reader.embedded_regular_signatures
    except Exception as exc:
        raise CorruptPdf("The PDF file is damaged and its signatures cannot be read.") from exc
    reports = []
    for embedded in signatures:
        try:
            reports.append(_report(embedded, trust_roots=roots, timestamp_roots=ts_roots))
        except Exception as exc:
            raise ValidationFailed(
                f"The signature in field {embedded.field_name!r} cannot be examined: {exc}"
            ) from exc
    return ValidationReport(signatures=tuple(reports))
