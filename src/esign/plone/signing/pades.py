"""PAdES signatures with a one-time key per signature.

Each signature gets its own key pair, made in memory, and a certificate from
the site's issuing CA naming the verified person. The key signs exactly one
document and is then dropped; nothing but the signed PDF leaves this module.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.general import get_pyca_cryptography_hash
from pyhanko_certvalidator.registry import SimpleCertificateStore

from esign.plone.errors import ESignError, SigningError
from esign.plone.signing.documents import count_signatures, stream_size
from esign.plone.signing.ltv import LEVELS, validation_context
from esign.plone.signing.pki import SitePKI, generate_private_key
from esign.plone.signing.values import SignatureResult, SigningProfile, VerifiedIdentity

if TYPE_CHECKING:
    from pyhanko.sign.timestamps import TimeStamper

    from esign.plone.signing.sigpage import StampText

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PROFILE", "OneTimeKeySigner", "sign_pdf", "sign_pdf_bytes"]

#: EC P-256, ten-minute certificate, ``Signature<n>`` field.
DEFAULT_PROFILE = SigningProfile()

_CHUNK = 1024 * 1024
# Room for the CMS blob in /Contents, counted by pyHanko in hex digits (2 per byte).
# The signer certificate, issuing CA, root and signed attributes take 3-6 KB with RSA-3072;
# a fixed reservation spares pyHanko a dry-run signing pass to estimate the size.
SIGNATURE_BYTES_RESERVED = 2 * 12 * 1024


def _asn1_certificate(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


@functools.lru_cache(maxsize=8)
def _ca_registry(chain_der: tuple[bytes, ...]) -> SimpleCertificateStore:
    # The CA chain is the same for every signature of a site; parsing it into pyHanko's
    # registry costs more than making the one-time key, so it is done once per chain.
    return SimpleCertificateStore.from_certs([asn1_x509.Certificate.load(der) for der in chain_der])


class OneTimeKeySigner(signers.Signer):
    """A pyHanko signer around a ``cryptography`` private key that is never serialised.

    pyHanko's ``SimpleSigner`` wants the key as asn1crypto ``PrivateKeyInfo``, i.e. the
    key's DER bytes in a Python ``bytes`` object we cannot wipe. Signing with the
    ``cryptography`` key object directly keeps the one-time key inside OpenSSL memory only.

    :param signing_key: the one-time private key (EC or RSA).
    :param signing_cert: the one-time certificate for that key.
    :param ca_chain: CA certificates to embed in the CMS so verifiers can build the chain.
    """

    def __init__(
        self,
        *,
        signing_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        signing_cert: x509.Certificate,
        ca_chain: Sequence[x509.Certificate],
    ) -> None:
        super().__init__(
            signing_cert=_asn1_certificate(signing_cert),
            cert_registry=_ca_registry(tuple(c.public_bytes(serialization.Encoding.DER) for c in ca_chain)),
            embed_roots=True,
        )
        self._key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = signing_key

    def forget_key(self) -> None:
        """Drop the reference to the private key; later signing attempts fail."""
        self._key = None

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        """Sign ``data`` with the one-time key (pyHanko's raw-signature hook).

        :param data: the DER of the signed attributes.
        :param digest_algorithm: pyHanko's digest name, e.g. ``"sha256"``.
        :param dry_run: pyHanko's size-estimation pass; signing is cheap, so it signs anyway.
        :returns: the raw signature value.
        :raises SigningError: when the key was already forgotten.
        """
        if self._key is None:
            raise SigningError("The one-time signing key has already been destroyed.")
        hash_algorithm = get_pyca_cryptography_hash(digest_algorithm)
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(data, ec.ECDSA(hash_algorithm))
        return self._key.sign(data, padding.PKCS1v15(), hash_algorithm)


def _readable_stream(source: BinaryIO | bytes) -> BinaryIO:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source)
    return source


def _sha256_of_stream(output: BinaryIO, *, start: int = 0, digest: Any = None) -> tuple[str, int]:
    digest = digest or hashlib.sha256()
    output.seek(start)
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    size = start
    while read := output.readinto(buffer):
        digest.update(view[:read])
        size += read
    return digest.hexdigest(), size


class _PrefixHashingOutput(io.RawIOBase):
    """Random-access output that hashes the copied original while pyHanko writes it.

    An incremental update starts with a byte-for-byte copy of the original file,
    written once, front to back; only the appended update is patched afterwards
    (the signature value). Hashing that prefix on its way through saves reading
    the whole signed file again to compute :attr:`SignatureResult.document_sha256`;
    only the short tail is read back.
    """

    def __init__(self, target: BinaryIO, *, prefix_size: int) -> None:
        self._target = target
        self._limit = prefix_size
        self.hashed = 0
        self.digest = hashlib.sha256()
        self.prefix_rewritten = False

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        position = self._target.tell()
        if position == self.hashed < self._limit:
            view = memoryview(data).cast("B")
            take = min(len(view), self._limit - self.hashed)
            self.digest.update(view[:take])
            self.hashed += take
        elif position < self.hashed:
            self.prefix_rewritten = True
        return self._target.write(data)

    def readinto(self, buffer: Any) -> int:
        return self._target.readinto(buffer)

    def read(self, size: int | None = -1) -> bytes:
        return self._target.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._target.seek(offset, whence)

    def tell(self) -> int:
        return self._target.tell()

    def flush(self) -> None:
        # Also reached from close() when this wrapper is collected: the caller owns
        # the target and may have closed it already.
        if not self._target.closed:
            self._target.flush()

    def result(self) -> tuple[str, int]:
        """SHA-256 and size of the whole output: the hashed prefix plus the tail read back."""
        if self.prefix_rewritten or self.hashed != self._limit:
            return _sha256_of_stream(self._target)
        return _sha256_of_stream(self._target, start=self.hashed, digest=self.digest)


class _HashingWriter(io.RawIOBase):
    """Write-only sink that hashes what passes through to the real output.

    Used when the output cannot be read back (a ZODB blob opened for writing): pyHanko
    then renders into memory and copies the finished file over in one sequential write.
    """

    def __init__(self, target: Any) -> None:
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        self.size += len(data)
        self._target.write(data)
        return len(data)


def sign_once(
    pdf_signer: signers.PdfSigner, signer: OneTimeKeySigner, writer, *, output, what: str, **kw: Any
):
    """Make the one signature a one-time key is for, then forget the key whatever happened.

    :raises SigningError: pyHanko failed (``what`` names the act: "signed", "sealed").
    """
    try:
        return pdf_signer.sign_pdf(writer, output=output, bytes_reserved=SIGNATURE_BYTES_RESERVED, **kw)
    except ESignError:
        raise
    except Exception as exc:
        # The details (pyHanko's, a TSA's) go to the log; the message stays readable.
        logger.warning("The document could not be %s", what, exc_info=True)
        raise SigningError(f"The document could not be {what} ({type(exc).__name__}).") from exc
    finally:
        signer.forget_key()


def signature_result(
    field_name: str, at: dt.datetime, certificate: x509.Certificate, *, sha256: str, size: int
) -> SignatureResult:
    return SignatureResult(
        field_name=field_name,
        signed_at=at,
        certificate_der=certificate.public_bytes(serialization.Encoding.DER),
        certificate_serial=f"{certificate.serial_number:x}",
        certificate_subject=certificate.subject.rfc4514_string(),
        document_sha256=sha256,
        document_size=size,
    )


def sign_pdf(
    source: BinaryIO | bytes,
    output: BinaryIO,
    *,
    identity: VerifiedIdentity,
    pki: SitePKI,
    profile: SigningProfile = DEFAULT_PROFILE,
    timestamper: TimeStamper | None = None,
    stamp: StampText | None = None,
) -> SignatureResult:
    """Sign a PDF for ``identity`` with a fresh one-time key (PAdES B-B, B-T or B-LT).

    The signature is added as an incremental update, so the original bytes, and with
    them every earlier signature, stay exactly as they were. ``profile.level`` says how
    far it goes: B-T adds a signature timestamp from ``timestamper``; B-LT and B-LTA
    also add, in a second update right after, a DSS with the certificates and the
    revocation data (site CA's OCSP response for the new certificate, its CRLs) —
    collected now, while the one-time certificate is valid. (B-LTA's document
    timestamp comes once all have signed: :func:`.ltv.add_document_timestamp`.)

    :param source: the PDF, as bytes or a seekable binary file object (read in chunks).
    :param output: an empty binary file object, at position 0, the signed PDF is written
        to. When it is readable and seekable (a file opened ``"w+b"``, a ZODB blob opened
        ``"r+"``) pyHanko writes into it directly and memory stays at about 1 MiB whatever
        the size; a write-only output (a blob opened ``"w"``) makes pyHanko assemble the
        whole signed file in memory first and copy it over.
    :param identity: the person an identity provider has just verified.
    :param pki: the site PKI that issues the one-time certificate.
    :param profile: key algorithm, certificate validity, field name, reason, location, level.
    :param timestamper: the RFC 3161 client (:func:`.ltv.http_timestamper`); needed from B-T.
    :param stamp: what the visible stamp says; the signature then goes, visibly, into the
        existing empty field ``profile.field_name`` (on the signature page).
    :returns: what was signed, by which certificate, and the output's SHA-256 and size.
    :raises SigningError: when the document cannot be signed.
    :raises PKIError: when the certificate cannot be issued.
    """
    stream = _readable_stream(source)
    if output.seekable() and output.tell() != 0:
        raise SigningError("The output for a signed document must be empty.")
    level = profile.level
    if level not in LEVELS:
        raise SigningError(f"Unknown PAdES level {level!r}.")
    if level != "B-B" and timestamper is None:
        raise SigningError(f"PAdES {level} needs a timestamping authority.")
    embed_revocation = level in ("B-LT", "B-LTA")
    if embed_revocation and not (output.readable() and output.seekable()):
        raise SigningError("A B-LT signature needs an output that can be read back.")
    try:
        writer = IncrementalPdfFileWriter(stream, strict=False)
        # pyHanko copies and hashes in 4 KiB chunks by default; 1 MiB chunks cut the
        # per-chunk Python overhead, which dominates for documents of tens of MB.
        writer.IO_CHUNK_SIZE = _CHUNK
        field_name = profile.field_name or f"Signature{count_signatures(writer.prev) + 1}"
    except Exception as exc:
        raise SigningError(f"The document cannot be opened for signing: {exc}") from exc

    signed_at = dt.datetime.now(dt.UTC)
    key = generate_private_key(profile.key_algorithm)
    certificate = pki.issue_one_time_certificate(
        identity,
        key.public_key(),
        validity=profile.certificate_validity,
        organisation=profile.organisation,
        now=signed_at,
    )
    signer = OneTimeKeySigner(signing_key=key, signing_cert=certificate, ca_chain=pki.chain)
    # The one-time key must exist nowhere but in this signer: the local name goes now,
    # the signer's reference right after signing (below), so the key object is freed as
    # soon as pyHanko is done and no later code path can sign a second document with it.
    del key
    context = None
    if embed_revocation:
        ocsps = [pki.ocsp_responder().response_for(certificate)] if pki.registry is not None else []
        context = validation_context(
            pki,
            ocsps=ocsps,
            allow_fetching=profile.fetch_revocation,
            extra_trust_roots=profile.tsa_trust_roots,
        )
    metadata = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        name=identity.common_name,
        reason=profile.reason,
        location=profile.location,
        embed_validation_info=embed_revocation,
        validation_context=context,
    )
    sign_kw: dict[str, Any] = {}
    stamp_style = None
    if stamp is not None:
        from esign.plone.signing import sigpage

        stamp_style = sigpage.stamp_style()
        sign_kw["appearance_text_params"] = sigpage.stamp_text_params(stamp)
    pdf_signer = signers.PdfSigner(
        metadata,
        signer=signer,
        timestamper=timestamper if level != "B-B" else None,
        stamp_style=stamp_style,
    )
    sink: Any
    if isinstance(output, io.BytesIO):
        sink = output  # pyHanko reads a BytesIO through its buffer without copies; keep that path
    elif output.readable() and output.seekable():
        sink = _PrefixHashingOutput(output, prefix_size=stream_size(stream))
    else:
        sink = _HashingWriter(output)
    sign_once(pdf_signer, signer, writer, output=sink, what="signed", chunk_size=_CHUNK, **sign_kw)
    del signer, pdf_signer

    if isinstance(sink, _HashingWriter):
        sha256, size = sink.digest.hexdigest(), sink.size
    elif isinstance(sink, _PrefixHashingOutput):
        sha256, size = sink.result()
    else:
        buffer = output.getbuffer()
        sha256, size = hashlib.sha256(buffer).hexdigest(), len(buffer)
        buffer.release()
    return signature_result(field_name, signed_at, certificate, sha256=sha256, size=size)


def sign_pdf_bytes(data: bytes, **kw: Any) -> tuple[bytes, SignatureResult]:
    """Sign a PDF held in memory.

    :param data: the PDF.
    :param kw: the keyword arguments of :func:`sign_pdf` (``identity``, ``pki``, ``profile``).
    :returns: the signed PDF and the :class:`SignatureResult`.
    :raises SigningError: see :func:`sign_pdf`.
    """
    output = io.BytesIO()
    result = sign_pdf(data, output, **kw)
    return output.getvalue(), result
