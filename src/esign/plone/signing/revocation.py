"""Revocation status of the site CA's certificates: a register, an OCSP responder and CRLs.

Every certificate the site's CAs issue — one-time signature and seal certificates,
the TSA certificate, the issuing CA — is recorded in a :class:`CertificateRegistry`
and kept there for good. The OCSP responder (RFC 6960) and the CRLs (RFC 5280)
answer from it, also for certificates that expired long ago: a signature made with
a ten-minute certificate is validated for years, and a verifier then asks "was this
certificate revoked when the document was signed?". Both are signed directly by the
CA key (no delegated responder certificate that could itself expire or be revoked),
through :class:`.keys.SigningKey` so a CA key in an HSM works the same way.

Everything here is bytes in, bytes out; the add-on serves it over HTTP
(``/esign-pki/ocsp``, ``/esign-pki/issuing.crl``, ``/esign-pki/root.crl``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from asn1crypto import core, ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from esign.plone.errors import PKIError
from esign.plone.signing.keys import SigningKey, public_key_matches, sign_crl, signature_algorithm

__all__ = [
    "CERTIFICATE_KINDS",
    "OCSP_REQUEST",
    "OCSP_RESPONSE",
    "PKIX_CERT",
    "PKIX_CRL",
    "REVOCATION_REASONS",
    "CertificateRegistry",
    "IssuedCertificate",
    "MemoryRegistry",
    "OCSPResponder",
    "build_crl",
    "key_identifier",
]

logger = logging.getLogger(__name__)

#: Media type of an OCSP request (RFC 6960 appendix C.1), POSTed to the responder.
OCSP_REQUEST = "application/ocsp-request"
#: Media type of an OCSP response (RFC 6960 appendix C.2).
OCSP_RESPONSE = "application/ocsp-response"
#: Media type of a DER CRL (RFC 2585).
PKIX_CRL = "application/pkix-crl"
#: Media type of a DER certificate (RFC 2585), for ``issuing.crt`` and ``root.crt``.
PKIX_CERT = "application/pkix-cert"

#: What a registered certificate is for.
CERTIFICATE_KINDS = ("signature", "seal", "tsa", "ca")

#: RFC 5280 CRLReason names accepted by :meth:`CertificateRegistry.revoke`, as asn1crypto
#: and ``cryptography.x509.ReasonFlags`` spell them. ``removeFromCRL`` only has a meaning
#: in delta CRLs, which this CA does not publish.
REVOCATION_REASONS = (
    "unspecified",
    "key_compromise",
    "ca_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
    "certificate_hold",
    "privilege_withdrawn",
    "aa_compromise",
)

# CertID hash algorithms a request may use (RFC 6960 §4.1.1; SHA-1 is what RFC 5019
# clients send, SHA-256 what newer ones do). The hash only names the issuer.
_CERT_ID_HASHES = ("sha1", "sha256", "sha384", "sha512")
_NONCE = "1.3.6.1.5.5.7.48.1.2"
# RFC 8954 §2.1: nonces up to 32 octets must be echoed; longer than 128 must be refused.
_MAX_NONCE = 128


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _whole_seconds(moment: dt.datetime) -> dt.datetime:
    # CRLs and OCSP responses carry whole seconds; truncating once here keeps the
    # time a verifier reads in the CRL and in the OCSP response identical.
    if moment.tzinfo is None:
        raise PKIError("Revocation times must be timezone-aware.")
    return moment.astimezone(dt.UTC).replace(microsecond=0)


def _key_bits(certificate: x509.Certificate) -> bytes:
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return asn1_x509.PublicKeyInfo.load(spki)["public_key"].contents[1:]


def key_identifier(certificate: x509.Certificate) -> bytes:
    """The key identifier certificates issued by ``certificate`` name in their AKI.

    :param certificate: a CA certificate.
    :returns: its subjectKeyIdentifier, or the SHA-1 of its public key bits (RFC 5280
        §4.2.1.2 method 1, which is also how the CA's own SKI is made) when it has none.
    """
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return hashlib.sha1(_key_bits(certificate), usedforsecurity=False).digest()


@dataclass(frozen=True)
class IssuedCertificate:
    """One certificate a site CA issued, as the revocation services know it."""

    #: The certificate's serial number.
    serial: int
    #: RFC 4514 subject, for listings.
    subject: str
    #: RFC 4514 name of the issuing CA.
    issuer: str
    #: The keyIdentifier of the certificate's authorityKeyIdentifier: the issuing CA's
    #: subjectKeyIdentifier (see :func:`key_identifier`); empty when the certificate has no AKI.
    issuer_key_id: bytes
    #: Start of validity (timezone-aware, UTC).
    not_before: dt.datetime
    #: End of validity (timezone-aware, UTC).
    not_after: dt.datetime
    #: One of :data:`CERTIFICATE_KINDS`.
    kind: str
    #: When it was revoked (whole seconds, UTC), ``None`` while it is not.
    revoked_at: dt.datetime | None = None
    #: One of :data:`REVOCATION_REASONS` when revoked.
    revocation_reason: str | None = None

    @classmethod
    def from_certificate(cls, certificate: x509.Certificate, *, kind: str) -> IssuedCertificate:
        """The register entry of a freshly issued certificate (not revoked).

        :param certificate: a certificate one of the site's CAs issued.
        :param kind: one of :data:`CERTIFICATE_KINDS`.
        :returns: the entry.
        :raises PKIError: for an unknown kind.
        """
        if kind not in CERTIFICATE_KINDS:
            raise PKIError(f"Unknown certificate kind {kind!r}; expected one of {CERTIFICATE_KINDS}.")
        try:
            aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
            issuer_key_id = aki.key_identifier or b""
        except x509.ExtensionNotFound:
            issuer_key_id = b""
        return cls(
            serial=certificate.serial_number,
            subject=certificate.subject.rfc4514_string(),
            issuer=certificate.issuer.rfc4514_string(),
            issuer_key_id=issuer_key_id,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            kind=kind,
        )

    @property
    def is_revoked(self) -> bool:
        """Whether the certificate has been revoked (at any time)."""
        return self.revoked_at is not None

    def revoked_by(self, moment: dt.datetime) -> bool:
        """Whether the certificate was revoked at ``moment`` (a revocation dated later does not count)."""
        return self.revoked_at is not None and self.revoked_at <= moment

    def is_issued_by(self, issuer_certificate: x509.Certificate) -> bool:
        """Whether ``issuer_certificate`` (its key, not just its name) issued this certificate."""
        if self.issuer_key_id:
            return self.issuer_key_id == key_identifier(issuer_certificate)
        return self.issuer == issuer_certificate.subject.rfc4514_string()

    def with_revocation(self, *, reason: str, at: dt.datetime) -> IssuedCertificate:
        """A copy marked revoked.

        :param reason: one of :data:`REVOCATION_REASONS`.
        :param at: the revocation time (timezone-aware; truncated to whole seconds).
        :raises PKIError: for an unknown reason or a naive time.
        """
        if reason not in REVOCATION_REASONS:
            raise PKIError(f"Unknown revocation reason {reason!r}; expected one of {REVOCATION_REASONS}.")
        return dataclasses.replace(self, revoked_at=_whole_seconds(at), revocation_reason=reason)


@runtime_checkable
class CertificateRegistry(Protocol):
    """Every certificate the site's CAs issued, kept forever, with its revocation state."""

    def add(self, certificate: x509.Certificate, *, kind: str) -> None:
        """Record a newly issued certificate.

        :raises PKIError: for an unknown kind, or another certificate with the same serial.
        """
        ...

    def get(self, serial: int) -> IssuedCertificate | None:
        """The entry of ``serial``, ``None`` when no such certificate was issued."""
        ...

    def revoke(
        self, serial: int, *, reason: str = "unspecified", at: dt.datetime | None = None
    ) -> IssuedCertificate:
        """Mark a certificate revoked; revoking it again keeps the first revocation.

        :param serial: the certificate's serial number.
        :param reason: one of :data:`REVOCATION_REASONS`.
        :param at: when (timezone-aware); defaults to now.
        :returns: the updated entry.
        :raises PKIError: for an unknown serial or reason.
        """
        ...

    def revoked(self) -> Iterable[IssuedCertificate]:
        """Every revoked certificate, of every issuer."""
        ...


class MemoryRegistry:
    """A :class:`CertificateRegistry` in a dict: for Plone-free use and tests.

    Thread-safe, so an HTTP server's threads can share it.

    :param clock: the current time (timezone-aware) for revocations without ``at``.
    """

    def __init__(self, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self._clock = clock or _now
        self._entries: dict[int, IssuedCertificate] = {}
        self._lock = threading.Lock()

    def add(self, certificate: x509.Certificate, *, kind: str) -> None:
        entry = IssuedCertificate.from_certificate(certificate, kind=kind)
        with self._lock:
            known = self._entries.get(entry.serial)
            if known is not None:
                if (known.issuer_key_id, known.subject) == (entry.issuer_key_id, entry.subject):
                    return
                raise PKIError(f"Serial {entry.serial:x} is already registered for {known.subject}.")
            self._entries[entry.serial] = entry

    def get(self, serial: int) -> IssuedCertificate | None:
        with self._lock:
            return self._entries.get(serial)

    def revoke(
        self, serial: int, *, reason: str = "unspecified", at: dt.datetime | None = None
    ) -> IssuedCertificate:
        with self._lock:
            entry = self._entries.get(serial)
            if entry is None:
                raise PKIError(f"No certificate with serial {serial:x} was issued by this site.")
            if entry.is_revoked:
                return entry
            entry = entry.with_revocation(reason=reason, at=at or self._clock())
            self._entries[serial] = entry
            return entry

    def revoked(self) -> list[IssuedCertificate]:
        with self._lock:
            return sorted(
                (e for e in self._entries.values() if e.is_revoked),
                key=lambda e: (e.revoked_at, e.serial),
            )

    def __len__(self) -> int:
        return len(self._entries)


class _RawExtension(core.Sequence):
    """An extension whose value is written as given (asn1crypto would parse a known one)."""

    _fields: ClassVar[list[tuple]] = [
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class _Refusal(Exception):
    """An OCSP request answered with an error status instead of a signed response."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error_response(status: str) -> bytes:
    return ocsp.OCSPResponse({"response_status": status}).dump()


class OCSPResponder:
    """An RFC 6960 OCSP responder for one CA, answering from a :class:`CertificateRegistry`.

    Responses are signed by the CA key itself (RFC 6960 §4.2.2.2, "the CA who issued
    the certificate"), identified by key hash, and carry the CA certificate so a
    verifier holding only the response finds the signer.

    Every response says ``good`` or ``revoked`` also for certificates that expired
    long ago, because the register keeps every certificate forever. It therefore
    carries the archive-cutoff extension (RFC 6960 §4.4.4) set to the CA's own
    start of validity, as ETSI EN 319 411-1 asks of responders that answer for
    expired certificates: status is retained for everything the CA ever issued.

    :param issuer_certificate: the CA whose certificates this responder answers for.
    :param issuer_key: that CA's key.
    :param registry: the register of issued certificates.
    :param clock: the current time (timezone-aware); defaults to the system clock.
    :param validity: nextUpdate − thisUpdate: how long a verifier may rely on an answer.
    :param include_certificate: put the CA certificate into responses.
    :raises PKIError: when the key does not belong to the certificate.

    Example::

        responder = OCSPResponder(pki.issuing_certificate, issuing_key, registry)
        response_der = responder.respond(request_der)          # POST body → body
        response_der = responder.respond_to_get(path_segment)  # GET /ocsp/<base64>
    """

    def __init__(
        self,
        issuer_certificate: x509.Certificate,
        issuer_key: SigningKey,
        registry: CertificateRegistry,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        validity: dt.timedelta = dt.timedelta(days=1),
        include_certificate: bool = True,
    ) -> None:
        if not public_key_matches(issuer_key, issuer_certificate):
            raise PKIError(
                f"The OCSP signing key ({issuer_key.label}) does not belong to the CA certificate."
            )
        if validity <= dt.timedelta(0):
            raise PKIError("OCSP responses need a positive validity.")
        self.issuer_certificate = issuer_certificate
        self.registry = registry
        self._key = issuer_key
        self._clock = clock or _now
        self._validity = validity
        issuer_der = issuer_certificate.public_bytes(serialization.Encoding.DER)
        self._issuer_asn1 = asn1_x509.Certificate.load(issuer_der)
        self._certs = [self._issuer_asn1] if include_certificate else None
        name_der = issuer_certificate.subject.public_bytes()
        key_bits = _key_bits(issuer_certificate)
        # What a CertID for this CA contains, per hash algorithm.
        self._cert_ids = {
            name: (
                hashlib.new(name, name_der, usedforsecurity=False).digest(),
                hashlib.new(name, key_bits, usedforsecurity=False).digest(),
            )
            for name in _CERT_ID_HASHES
        }
        self._responder_key_hash = self._cert_ids["sha1"][1]
        self._archive_cutoff = issuer_certificate.not_valid_before_utc

    # -- requests ---------------------------------------------------------------

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER OCSPRequest (the body of a POST).

        A request that cannot be answered gets an OCSPResponse with an error status, not
        an exception — ``malformedRequest`` for bytes that are not a request,
        ``unauthorized`` when a CertID names another CA, ``internalError`` when the
        CA key refuses.

        :param request_der: the request.
        :returns: a DER OCSPResponse, media type :data:`OCSP_RESPONSE`.
        """
        try:
            return self._respond(request_der)
        except _Refusal as refusal:
            logger.info("OCSP request refused (%s): %s", refusal.status, refusal)
            return _error_response(refusal.status)
        except PKIError:
            logger.exception("OCSP response could not be signed")
            return _error_response("internal_error")

    def respond_to_get(self, encoded_request: str) -> bytes:
        """Answer the GET form (RFC 6960 appendix A.1): ``<url>/<url-encoded base64 of the DER request>``.

        :param encoded_request: the path segment after the responder's URL, as received
            (still percent-encoded or already decoded: both work).
        :returns: a DER OCSPResponse, ``malformedRequest`` when the segment is not base64.
        """
        text = urllib.parse.unquote(encoded_request.strip().strip("/"))
        try:
            request_der = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            logger.info("OCSP GET request is not base64")
            return _error_response("malformed_request")
        return self.respond(request_der)

    def response_for(self, certificate: x509.Certificate) -> bytes:
        """A response about ``certificate``, for in-process use (e.g. LTV data at signing time).

        Goes through the same code as :meth:`respond`, with a SHA-1 CertID (RFC 5019)
        and no nonce.

        :param certificate: a certificate this responder's CA issued.
        :returns: a DER OCSPResponse with status ``successful``.
        :raises PKIError: when the certificate was not issued by this CA or signing fails.
        """
        if certificate.issuer != self.issuer_certificate.subject:
            raise PKIError(
                f"{certificate.subject.rfc4514_string()} was not issued by "
                f"{self.issuer_certificate.subject.rfc4514_string()}."
            )
        name_hash, key_hash = self._cert_ids["sha1"]
        request = ocsp.OCSPRequest(
            {
                "tbs_request": {
                    "request_list": [
                        {
                            "req_cert": {
                                "hash_algorithm": {"algorithm": "sha1"},
                                "issuer_name_hash": name_hash,
                                "issuer_key_hash": key_hash,
                                "serial_number": certificate.serial_number,
                            }
                        }
                    ]
                }
            }
        )
        try:
            return self._respond(request.dump())
        except _Refusal as refusal:
            raise PKIError(f"The OCSP responder refused its own request: {refusal}") from refusal

    # -- internals ---------------------------------------------------------------

    def _parse(self, request_der: bytes) -> tuple[list[ocsp.CertId], bytes | None]:
        try:
            request = ocsp.OCSPRequest.load(request_der, strict=True)
            tbs = request["tbs_request"]
            # asn1crypto parses lazily; reading .native walks the request list so
            # malformed inner parts fail here rather than halfway through the answer.
            tbs["request_list"].native  # noqa: B018
            cert_ids = [item["req_cert"] for item in tbs["request_list"]]
            nonce = None
            for parsed in tbs["request_extensions"] or ():
                # Read as raw octets, not through asn1crypto's nonce spec: some clients send
                # the nonce without the inner OCTET STRING (pre-RFC 8954); echo is all we do.
                extension = _RawExtension.load(parsed.dump())
                if extension["extn_id"].dotted == _NONCE:
                    nonce = extension["extn_value"].native
                elif extension["critical"].native:
                    raise _Refusal(
                        "malformed_request", f"unsupported critical extension {extension['extn_id'].dotted}"
                    )
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            raise _Refusal("malformed_request", f"not an OCSP request: {exc}") from exc
        if not cert_ids:
            raise _Refusal("malformed_request", "the request names no certificate")
        if nonce is not None and not 0 < len(nonce) <= _MAX_NONCE:
            raise _Refusal("malformed_request", f"nonce of {len(nonce)} octets")
        return cert_ids, nonce

    def _check_issuer(self, cert_id: ocsp.CertId) -> None:
        algorithm = cert_id["hash_algorithm"]["algorithm"].native
        if algorithm not in self._cert_ids:
            raise _Refusal("malformed_request", f"CertID hash algorithm {algorithm} is not supported")
        name_hash, key_hash = self._cert_ids[algorithm]
        if (cert_id["issuer_name_hash"].native, cert_id["issuer_key_hash"].native) != (name_hash, key_hash):
            raise _Refusal("unauthorized", "the CertID names another CA")

    def _status(self, serial: int, now: dt.datetime) -> ocsp.CertStatus:
        entry = self.registry.get(serial)
        if entry is None or not entry.is_issued_by(self.issuer_certificate):
            return ocsp.CertStatus(name="unknown", value=None)
        if not entry.revoked_by(now):
            return ocsp.CertStatus(name="good", value=None)
        info = {"revocation_time": entry.revoked_at}
        # RFC 5280 §5.3.1: no reason code rather than "unspecified".
        if entry.revocation_reason and entry.revocation_reason != "unspecified":
            info["revocation_reason"] = entry.revocation_reason
        return ocsp.CertStatus(name="revoked", value=info)

    def _next_update(self, serial: int, now: dt.datetime) -> dt.datetime:
        # A certificate's status can change only while it is valid: for a one-time
        # certificate the answer is good until it expires (minutes), not a day longer.
        # Validators sliding back in time (ETSI EN 319 102-1, 5.6.2.1) then land inside its
        # validity; for an expired certificate the answer stays as it is (archive cutoff).
        entry = self.registry.get(serial)
        if entry is not None and now < entry.not_after < now + self._validity:
            return _whole_seconds(entry.not_after)
        return now + self._validity

    def _respond(self, request_der: bytes) -> bytes:
        cert_ids, nonce = self._parse(request_der)
        for cert_id in cert_ids:
            self._check_issuer(cert_id)
        now = _whole_seconds(self._clock())
        single_extensions = [{"extn_id": "archive_cutoff", "extn_value": self._archive_cutoff}]
        responses = [
            {
                "cert_id": cert_id,
                "cert_status": self._status(cert_id["serial_number"].native, now),
                "this_update": now,
                "next_update": self._next_update(cert_id["serial_number"].native, now),
                "single_extensions": single_extensions,
            }
            for cert_id in cert_ids
        ]
        response_data = ocsp.ResponseData(
            {
                "responder_id": ocsp.ResponderId(name="by_key", value=self._responder_key_hash),
                "produced_at": now,
                "responses": responses,
            }
        )
        if nonce is not None:
            # Echo the extension value byte for byte: clients compare it with what they sent.
            raw = _RawExtension({"extn_id": _NONCE, "extn_value": nonce})
            response_data["response_extensions"] = [ocsp.ResponseDataExtension.load(raw.dump())]
        tbs = response_data.dump()
        basic = {
            "tbs_response_data": response_data,
            "signature_algorithm": signature_algorithm(self._key),
            "signature": self._key.sign(tbs),
        }
        if self._certs:
            basic["certs"] = self._certs
        return ocsp.OCSPResponse(
            {
                "response_status": "successful",
                "response_bytes": {
                    "response_type": "basic_ocsp_response",
                    "response": ocsp.BasicOCSPResponse(basic),
                },
            }
        ).dump()


def build_crl(
    issuer_certificate: x509.Certificate,
    issuer_key: SigningKey,
    revoked: Iterable[IssuedCertificate],
    *,
    number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
) -> bytes:
    """A complete CRL (RFC 5280) of one CA, signed with its key.

    Entries of other CAs and revocations dated after ``this_update`` are left out,
    so the whole register's :meth:`CertificateRegistry.revoked` can be passed for
    every CA. Expired certificates stay listed (the register never forgets them),
    which the ExpiredCertsOnCRL extension (X.509 §9.5.2.8, 2.5.29.60) announces with
    the CA's own start of validity, so a verifier years later can rely on the CRL.

    :param issuer_certificate: the CA (root or issuing) the CRL is for.
    :param issuer_key: its key.
    :param revoked: revoked entries, e.g. ``registry.revoked()``.
    :param number: the cRLNumber; must grow with every CRL of this CA, e.g.
        ``int(this_update.timestamp())``.
    :param this_update: issue time (timezone-aware).
    :param next_update: when the next CRL will be out (timezone-aware).
    :returns: the DER CRL, media type :data:`PKIX_CRL`.
    :raises PKIError: when the times or the number are wrong, the key does not belong
        to the CA, or signing fails.
    """
    this_update = _whole_seconds(this_update)
    next_update = _whole_seconds(next_update)
    if next_update <= this_update:
        raise PKIError("A CRL's nextUpdate must come after its thisUpdate.")
    if not 0 <= number < 2**159:
        raise PKIError("A cRLNumber is a non-negative integer of at most 20 octets.")
    if not public_key_matches(issuer_key, issuer_certificate):
        raise PKIError(f"The CRL signing key ({issuer_key.label}) does not belong to the CA certificate.")
    expired_certs_on_crl = core.GeneralizedTime(issuer_certificate.not_valid_before_utc).dump()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_certificate.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier(
                key_identifier=key_identifier(issuer_certificate),
                authority_cert_issuer=None,
                authority_cert_serial_number=None,
            ),
            critical=False,
        )
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.60"), expired_certs_on_crl),
            critical=False,
        )
    )
    for entry in revoked:
        if not entry.is_issued_by(issuer_certificate) or not entry.revoked_by(this_update):
            continue
        revoked_certificate = (
            x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(entry.revoked_at)
        )
        if entry.revocation_reason and entry.revocation_reason != "unspecified":
            revoked_certificate = revoked_certificate.add_extension(
                x509.CRLReason(x509.ReasonFlags[entry.revocation_reason]), critical=False
            )
        builder = builder.add_revoked_certificate(revoked_certificate.build())
    try:
        return sign_crl(builder, issuer_key).public_bytes(serialization.Encoding.DER)
    except (ValueError, TypeError) as exc:
        raise PKIError(f"The CRL cannot be built: {exc}") from exc
