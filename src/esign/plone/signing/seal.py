"""Electronic seals: a PAdES signature by the organisation rather than by a person.

A seal vouches that a document comes from the organisation unchanged, e.g. the
evidence summary ("Signeringsbevis") the site issues when a case is complete. It
is made like a person's signature (:mod:`.pades`): a fresh key pair in memory, a
certificate from the site's issuing CA, one signature, the key dropped. Only the
certificate differs: it names the organisation and no person, so it carries no
``serialNumber`` and no authentication context.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from typing import Any, BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers

from esign.plone.errors import SigningError
from esign.plone.signing.certificates import as_signing_key, signing_certificate_builder, with_publication
from esign.plone.signing.documents import count_signatures
from esign.plone.signing.keys import SigningKey, sign_certificate
from esign.plone.signing.pades import OneTimeKeySigner, sign_once, signature_result
from esign.plone.signing.pki import SitePKI, generate_private_key
from esign.plone.signing.values import KeyAlgorithm, PublicationPoints, SignatureResult

__all__ = ["SEAL_CN_SUFFIX", "build_seal_certificate", "seal_pdf"]

#: Appended to the organisation's name in the seal certificate's common name.
SEAL_CN_SUFFIX = " – E-underskrift"

# X.520 upper bound of commonName and organizationName; cryptography counts it in UTF-8
# bytes, so a name with å, ä, ö reaches it sooner than its length in characters suggests.
_NAME_MAX = 64


def _seal_common_name(organisation: str) -> str:
    room = _NAME_MAX - len(SEAL_CN_SUFFIX.encode())
    name = organisation
    while len(name.encode()) > room:
        name = name[:-1]
    return name.rstrip() + SEAL_CN_SUFFIX


def build_seal_certificate(
    organisation: str,
    public_key: CertificatePublicKeyTypes,
    *,
    issuer_certificate: x509.Certificate,
    issuer_key: SigningKey | CertificateIssuerPrivateKeyTypes,
    validity: dt.timedelta,
    country: str = "SE",
    now: dt.datetime | None = None,
    publication: PublicationPoints | None = None,
) -> x509.Certificate:
    """Issue a one-time seal certificate naming ``organisation``.

    Subject ``C=<country>, O=<organisation>, CN=<organisation> – E-underskrift``; the
    organisation's part of the common name is shortened when the whole would pass 64 bytes.

    :param organisation: the organisation that seals.
    :param public_key: public half of the key pair made for this one seal.
    :param issuer_certificate: the site's issuing CA certificate.
    :param issuer_key: the issuing CA's private key.
    :param validity: how long the certificate is valid from ``now``.
    :param country: two-letter country code of the subject.
    :param now: the issuing moment (timezone-aware); defaults to the current time.
    :returns: the signed certificate.
    :raises ValueError: when ``organisation`` is empty or longer than 64 bytes in UTF-8.
    """
    organisation = organisation.strip()
    if not organisation:
        raise ValueError("a seal certificate needs the organisation's name")
    now = now or dt.datetime.now(dt.UTC)
    common_name = _seal_common_name(organisation)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    builder = signing_certificate_builder(
        subject=subject,
        public_key=public_key,
        issuer_certificate=issuer_certificate,
        validity=validity,
        now=now,
    )
    return sign_certificate(with_publication(builder, publication), as_signing_key(issuer_key))


class _TimedPdfSigner(signers.PdfSigner):
    # pyHanko stamps the signed attributes with its own clock; the seal's moment is
    # also its certificate's issuing moment, so both must be the same instant.
    def __init__(self, *args: Any, system_time: dt.datetime, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._system_time = system_time

    def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
        session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
        session.system_time = self._system_time
        return session


def seal_pdf(
    source: BinaryIO | bytes,
    output: BinaryIO,
    *,
    pki: SitePKI,
    organisation: str,
    reason: str = "Signeringsbevis",
    now: dt.datetime | None = None,
    key_algorithm: KeyAlgorithm = "ec-p256",
    validity: dt.timedelta = dt.timedelta(minutes=10),
) -> SignatureResult:
    """Seal a PDF in the organisation's name with a fresh one-time key (PAdES B-B).

    The seal is added as an incremental update, like a person's signature. Seals are
    for documents the site makes itself (a few pages), so the sealed file is put
    together in memory and then written to ``output``.

    :param source: the PDF, as bytes or a seekable binary file object.
    :param output: an empty binary file object the sealed PDF is written to.
    :param pki: the site PKI whose issuing CA certifies the seal.
    :param organisation: the sealing organisation, named in the certificate and the signature.
    :param reason: the signature's stated reason.
    :param now: the moment of sealing (timezone-aware): the certificate is valid from a
        minute before, and it is the signing time in the signature. Defaults to the current time.
    :param key_algorithm: ``"ec-p256"`` or ``"rsa-3072"``.
    :param validity: lifetime of the one-time seal certificate from ``now``.
    :returns: the field, time, certificate, and the sealed file's SHA-256 and size.
    :raises SigningError: when the document cannot be sealed or ``organisation`` is empty.
    :raises PKIError: when the seal certificate cannot be issued.

    Example::

        with open("bevis.pdf", "wb") as out:
            seal_pdf(pdf_bytes, out, pki=pki, organisation="Exempelkommunen")
    """
    if not organisation or not organisation.strip():
        raise SigningError("A seal needs the name of the organisation that seals.")
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        writer = IncrementalPdfFileWriter(stream, strict=False)
        field_name = f"Signature{count_signatures(writer.prev) + 1}"
    except Exception as exc:
        raise SigningError(f"The document cannot be opened for sealing: {exc}") from exc

    sealed_at = now or dt.datetime.now(dt.UTC)
    key = generate_private_key(key_algorithm)
    certificate = pki.issue_seal_certificate(organisation, key.public_key(), validity=validity, now=sealed_at)
    signer = OneTimeKeySigner(signing_key=key, signing_cert=certificate, ca_chain=pki.chain)
    # Same hygiene as a person's signature: the key lives in the signer only, and only
    # until this one seal is made.
    del key
    metadata = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        name=organisation.strip(),
        reason=reason,
    )
    pdf_signer = _TimedPdfSigner(metadata, signer=signer, system_time=sealed_at)
    sealed = io.BytesIO()
    sign_once(pdf_signer, signer, writer, output=sealed, what="sealed")
    del signer, pdf_signer

    data = sealed.getbuffer()
    try:
        output.write(data)
        return signature_result(
            field_name, sealed_at, certificate, sha256=hashlib.sha256(data).hexdigest(), size=len(data)
        )
    finally:
        data.release()
