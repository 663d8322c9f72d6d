"""The signing engine: site PKI, one-time signature certificates, PAdES signing and validation.

Plone-free on purpose: values in (:mod:`.values`), values out, errors from
:mod:`esign.plone.errors`. Views and services reach it through ``esign.plone.api``.
"""

from esign.plone.signing.certificates import build_signature_certificate, read_authentication_context
from esign.plone.signing.documents import inspect_pdf
from esign.plone.signing.pades import sign_pdf, sign_pdf_bytes
from esign.plone.signing.pki import SitePKI
from esign.plone.signing.seal import seal_pdf
from esign.plone.signing.validation import validate_pdf
from esign.plone.signing.values import (
    LOA3,
    AuthenticationContext,
    PdfInfo,
    SignatureReport,
    SignatureResult,
    SigningProfile,
    ValidationReport,
    VerifiedIdentity,
)

__all__ = [
    "LOA3",
    "AuthenticationContext",
    "PdfInfo",
    "SignatureReport",
    "SignatureResult",
    "SigningProfile",
    "SitePKI",
    "ValidationReport",
    "VerifiedIdentity",
    "build_signature_certificate",
    "inspect_pdf",
    "read_authentication_context",
    "seal_pdf",
    "sign_pdf",
    "sign_pdf_bytes",
    "validate_pdf",
]
