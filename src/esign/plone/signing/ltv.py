"""Long-term validity: timestamps, revocation data in the document, document timestamps.

PAdES levels (EN 319 142-1), as this add-on makes them:

* **B-B** — the signature alone (:func:`.pades.sign_pdf` without a timestamper).
* **B-T** — plus a signature timestamp from an RFC 3161 TSA (the site's own or an external one).
* **B-LT** — plus, right after each signature, a DSS with the certificates, OCSP responses
  and CRLs of the signer's and the TSA's chains, collected while the one-time certificate
  is still valid.
* **B-LTA** — plus, once all have signed, a document timestamp over everything
  (:func:`add_document_timestamp`). Before that timestamp's TSA certificate expires,
  :func:`renew_archive_timestamp` adds the revocation data of the last timestamp and a new
  document timestamp on top, so the chain of proof never lapses.

The site CA's revocation data is made in process (OCSP responder and CRLs over the
registry of issued certificates) and handed to pyHanko as local data; validation needs
no network. The same responder and CRLs are published over HTTP for other validators.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import logging
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, Literal

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers, timestamps
from pyhanko.sign.general import extract_certificate_info
from pyhanko.sign.signers.pdf_signer import TimestampDSSContentSettings
from pyhanko_certvalidator import ValidationContext

from esign.plone.errors import ESignError, InvalidInput, SigningError
from esign.plone.signing.pki import SitePKI

__all__ = [
    "LEVELS",
    "Level",
    "add_document_timestamp",
    "archive_timestamp_expiry",
    "current_status",
    "http_timestamper",
    "load_trust_roots",
    "local_timestamper",
    "renew_archive_timestamp",
    "validation_context",
]

Level = Literal["B-B", "B-T", "B-LT", "B-LTA"]
LEVELS: tuple[Level, ...] = ("B-B", "B-T", "B-LT", "B-LTA")

_CHUNK = 1024 * 1024


class _LocalDataOnPurpose(logging.Filter):
    """pyHanko warns when it embeds revocation data without fetching; ours is handed in on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_LocalDataOnPurpose())
# Room for a document timestamp token (TSA certificate and chain included) in hex digits.
TIMESTAMP_BYTES_RESERVED = 2 * 8 * 1024


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


@functools.lru_cache(maxsize=16)
def http_timestamper(
    url: str, *, username: str = "", password: str = "", timeout: float = 10.0
) -> timestamps.TimeStamper:
    """The RFC 3161 client for the TSA at ``url`` (the site's own or an external one).

    One client per address is kept: pyHanko caches a sample token in it to size the
    space the timestamp needs in the PDF.
    """
    auth = (username, password) if username else None
    return timestamps.HTTPTimeStamper(url, timeout=timeout, auth=auth)


class _LocalTimeStamper(timestamps.TimeStamper):
    """The site TSA called without HTTP — for tools that run without a web server (benchmarks)."""

    def __init__(self, respond: Callable[[bytes], bytes]) -> None:
        super().__init__()
        self._respond = respond

    async def async_request_tsa_response(self, req, *args: Any, **kw: Any):  # type: ignore[override]
        from asn1crypto import tsp

        return tsp.TimeStampResp.load(self._respond(req.dump()))


_local_timestampers: dict[tuple[bytes, str], timestamps.TimeStamper] = {}


def local_timestamper(
    pki: SitePKI, *, clock: Callable[[], dt.datetime] | None = None
) -> timestamps.TimeStamper:
    """A timestamper that asks the site TSA in this process (same responder as over HTTP).

    On the system clock one is kept per TSA certificate and key, as :func:`http_timestamper`
    keeps one per address: a new one has pyHanko ask the TSA for a sample token before each
    signature's real one, and the TSA encode its certificates again.
    """
    certificate = pki.tsa_certificate
    if clock is not None or certificate is None:
        return _LocalTimeStamper(pki.timestamp_authority(clock=clock).respond)
    key = (certificate.fingerprint(hashes.SHA256()), pki.tsa_key_label)
    timestamper = _local_timestampers.get(key)
    if timestamper is None:
        if len(_local_timestampers) >= 8:  # renewed TSA certificates, test sites: keep it small
            _local_timestampers.clear()
        timestamper = _local_timestampers[key] = _LocalTimeStamper(pki.timestamp_authority().respond)
    return timestamper


def load_trust_roots(pem: str | bytes) -> tuple[x509.Certificate, ...]:
    """The certificates in PEM text: an external TSA's trust anchors, as an administrator pastes them.

    :param pem: one or more ``-----BEGIN CERTIFICATE-----`` blocks; text between them is ignored.
    :returns: the certificates, in the order given.
    :raises InvalidInput: when there is no certificate or a block is not one.
    """
    data = pem.encode("utf-8", "replace") if isinstance(pem, str) else bytes(pem)
    blocks = data.count(b"-----BEGIN ")
    try:
        certificates = tuple(x509.load_pem_x509_certificates(data)) if blocks else ()
    except ValueError:
        certificates = ()
    if not certificates or len(certificates) != blocks:
        raise InvalidInput(
            "Rotcertifikaten kan inte läsas: klistra in ett eller flera certifikat i PEM-format "
            "(-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)."
        )
    return certificates


def validation_context(
    pki: SitePKI,
    *,
    moment: dt.datetime | None = None,
    ocsps: Sequence[bytes] = (),
    tsa_certificates: Sequence[x509.Certificate] = (),
    extra_trust_roots: Sequence[x509.Certificate] = (),
    allow_fetching: bool = False,
) -> ValidationContext:
    """What pyHanko validates against when it collects revocation data for the DSS.

    The site root is trusted; the site CA's CRLs (issuing and root) and the given OCSP
    responses are handed in, so nothing is fetched for the site's own certificates.
    ``allow_fetching`` lets pyHanko fetch revocation data of an external TSA's chain over
    HTTP; the site's own certificates are then still answered in process
    (:class:`.fetchers.SiteFetcherBackend`), never by a request to the site itself.

    :param moment: validation time (default: now).
    :param ocsps: DER OCSP responses to offer (e.g. for the one-time certificate just issued).
    :param tsa_certificates: TSA certificates whose status to offer besides the site TSA's
        current one (the one of the timestamp an archival renewal covers).
    :param extra_trust_roots: anchors trusted besides the site root: an external TSA's.
        pyHanko validates the TSA's chain before it embeds its revocation data and stops
        when the chain ends at a root it does not trust.
    """
    # The one-time certificates get their status by OCSP, one by one, capped at their
    # expiry. The issuing CA's CRL is offered only without a registry (no OCSP): a CRL
    # made years later "covers" every certificate of that CA, expired ones included, and
    # validators would take it as their status and slide no further back than it.
    # (With an imported CA the TSA is certified by the issuing CA and its status is that CRL.)
    needs_issuing_crl = pki.registry is None or pki.tsa_certified_by_issuing_ca
    crls = [pki.issuing_crl(now=moment)] if needs_issuing_crl else []
    root_crl = pki.root_crl(now=moment)
    if root_crl is not None:
        crls.append(root_crl)
    others = [*pki.chain]
    tsa = [c for c in (pki.tsa_certificate, *tsa_certificates) if c is not None]
    others.extend(tsa)
    ocsps = [*ocsps, *pki.tsa_status(tsa)]
    kw: dict[str, Any] = {}
    if moment is not None:
        kw["moment"] = moment
    if allow_fetching:
        from esign.plone.signing.fetchers import SiteFetcherBackend

        kw["fetcher_backend"] = SiteFetcherBackend(pki, moment=moment, ocsps=ocsps)
    return ValidationContext(
        trust_roots=[_asn1(c) for c in (pki.root_certificate, *extra_trust_roots)],
        other_certs=[_asn1(c) for c in others],
        crls=crls,
        ocsps=list(ocsps),
        allow_fetching=allow_fetching,
        revocation_mode="hard-fail",
        **kw,
    )


def _readable(source: BinaryIO | bytes) -> BinaryIO:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source)
    return source


def add_document_timestamp(
    source: BinaryIO | bytes,
    output: BinaryIO,
    *,
    pki: SitePKI,
    timestamper: timestamps.TimeStamper,
    moment: dt.datetime | None = None,
    allow_fetching: bool = False,
    extra_trust_roots: Sequence[x509.Certificate] = (),
) -> dt.datetime:
    """Bring a signed document to B-LTA: complete the DSS, then add a document timestamp.

    :param source: the signed PDF (all signatures already at B-LT).
    :param output: an empty, readable and seekable binary file the result is written to.
    :param allow_fetching: fetch the revocation data of an external TSA's chain.
    :param extra_trust_roots: an external TSA's trust anchors (see :func:`validation_context`).
    :returns: when the TSA certificate of the new document timestamp expires (UTC), as
        :func:`archive_timestamp_expiry` reads it from ``output``, without reading it.
    :raises SigningError: when the TSA or pyHanko fails; ``output`` is then incomplete
        and must be thrown away (the caller keeps ``source``).
    """
    try:
        writer = IncrementalPdfFileWriter(_readable(source), strict=False)
        writer.IO_CHUNK_SIZE = _CHUNK
        context = validation_context(
            pki, moment=moment, allow_fetching=allow_fetching, extra_trust_roots=extra_trust_roots
        )
        keeper = _TokenKeeper(timestamper)
        signers.PdfTimeStamper(keeper).timestamp_pdf(
            writer,
            "sha256",
            validation_context=context,
            bytes_reserved=TIMESTAMP_BYTES_RESERVED,
            output=output,
            chunk_size=_CHUNK,
            # The revocation data of the timestamp's own TSA chain goes into the DSS
            # after it, ready for the next archive timestamp.
            dss_settings=TimestampDSSContentSettings(include_vri=False),
        )
        return _tsa_certificate_expiry(keeper.token)
    except ESignError:
        raise
    except Exception as exc:
        raise SigningError(f"The document timestamp could not be added: {exc}") from exc


class _TokenKeeper(timestamps.TimeStamper):
    """Hands pyHanko's calls on to ``inner`` and keeps the token it got for the document.

    The token is the one pyHanko embeds as the document timestamp; its TSA certificate says
    when the archive timestamp must be renewed. Reading that back from the written file
    would parse every signature's contents again, hex digit by hex digit.
    """

    def __init__(self, inner: timestamps.TimeStamper) -> None:
        super().__init__()
        self._inner = inner
        self.token: Any = None

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> Any:
        self.token = await self._inner.async_timestamp(message_digest, md_algorithm)
        return self.token

    async def async_dummy_response(self, md_algorithm: str) -> Any:
        return await self._inner.async_dummy_response(md_algorithm)

    async def validation_paths(self, validation_context: ValidationContext):  # type: ignore[override]
        async for path in self._inner.validation_paths(validation_context):
            yield path


def _tsa_certificate_expiry(token: Any) -> dt.datetime:
    if token is None:
        raise SigningError("The TSA gave no timestamp for the document.")
    certificate = extract_certificate_info(token["content"]).signer_cert
    return certificate["tbs_certificate"]["validity"]["not_after"].native


def archive_timestamp_expiry(source: BinaryIO | bytes) -> dt.datetime | None:
    """When the TSA certificate of the document's last document timestamp expires.

    :returns: the expiry (UTC), or ``None`` when the document has no document timestamp.
    :raises SigningError: when the document cannot be read.
    """
    try:
        reader = PdfFileReader(_readable(source), strict=False)
        stamps = [s for s in reader.embedded_signatures if s.sig_object.get("/Type") == "/DocTimeStamp"]
    except Exception as exc:
        raise SigningError(f"The document cannot be read: {exc}") from exc
    if not stamps:
        return None
    last = max(stamps, key=lambda s: s.signed_revision)
    certificate = last.signer_cert
    return certificate["tbs_certificate"]["validity"]["not_after"].native


def current_status(
    pki: SitePKI, source: BinaryIO | bytes | None = None, *, now: dt.datetime | None = None
) -> dict[str, list[bytes]]:
    """What the site hands a validator today: ``crls`` and ``ocsp_responses`` for :func:`.reports.assess_pdf`.

    Always the current status of the site's TSA certificates that are still valid (the
    document's document-timestamp certificates and the site's current one). For a document
    without a document timestamp (B-B, B-T, B-LT), also the site CA's current CRLs: it is
    validated as of now. A B-LTA document carries the rest itself; giving it fresh CRLs
    would stop pyHanko's time slide at "now", where its one-time certificates have long
    expired, instead of letting it go back to when they were valid.
    """
    now = now or dt.datetime.now(dt.UTC)
    stamps: list[x509.Certificate] = []
    if source is not None:
        try:
            stamps = _document_timestamp_certificates(PdfFileReader(_readable(source), strict=False))
        except Exception:  # noqa: S110 - the validator reports an unreadable file itself
            pass
        finally:
            if not isinstance(source, (bytes, bytearray, memoryview)):
                source.seek(0)
    crls = []
    if not stamps or pki.tsa_certified_by_issuing_ca:
        crls.append(pki.issuing_crl(now=now))
    if not stamps:
        root_crl = pki.root_crl(now=now)
        if root_crl is not None:
            crls.append(root_crl)
    certificates = [*stamps, *([pki.tsa_certificate] if pki.tsa_certificate is not None else [])]
    live = {
        c.serial_number: c for c in certificates if c.not_valid_before_utc <= now <= c.not_valid_after_utc
    }
    return {"crls": crls, "ocsp_responses": pki.tsa_status(list(live.values()), now=now)}


def _document_timestamp_certificates(reader: PdfFileReader) -> list[x509.Certificate]:
    return [
        x509.load_der_x509_certificate(s.signer_cert.dump())
        for s in reader.embedded_signatures
        if s.sig_object.get("/Type") == "/DocTimeStamp"
    ]


def renew_archive_timestamp(
    source: BinaryIO | bytes,
    output: BinaryIO,
    *,
    pki: SitePKI,
    timestamper: timestamps.TimeStamper,
    moment: dt.datetime | None = None,
    allow_fetching: bool = False,
    extra_trust_roots: Sequence[x509.Certificate] = (),
) -> None:
    """Add the last timestamp's revocation data and a new document timestamp (archival renewal).

    :param allow_fetching: fetch the revocation data of an external TSA's chain.
    :param extra_trust_roots: an external TSA's trust anchors (see :func:`validation_context`).
    :raises SigningError: when the last timestamp no longer validates or the TSA fails.
    """
    try:
        reader = PdfFileReader(_readable(source), strict=False)
        context = validation_context(
            pki,
            moment=moment,
            tsa_certificates=_document_timestamp_certificates(reader),
            allow_fetching=allow_fetching,
            extra_trust_roots=extra_trust_roots,
        )
        signers.PdfTimeStamper(timestamper).update_archival_timestamp_chain(
            reader, context, in_place=False, output=output, chunk_size=_CHUNK
        )
    except ESignError:
        raise
    except Exception as exc:
        raise SigningError(f"The archive timestamp could not be renewed: {exc}") from exc
