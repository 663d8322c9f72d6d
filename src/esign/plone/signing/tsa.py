"""The site's own time-stamping authority (RFC 3161).

PAdES B-T and above need a trusted time for each signature: a timestamp token over
the signature value, signed by a TSA. The site CA's root issues a TSA certificate
(:func:`tsa_certificate_builder`) and :class:`TimeStampAuthority` answers
timestamp requests with it, so pyHanko's ``HTTPTimeStamper`` pointed at
``<site>/esign-pki/tsa`` gets tokens from the site itself. Tokens are signed through
:class:`.keys.SigningKey` (EC P-256 or RSA, in a file or in an HSM).

Everything here is bytes in, bytes out; the add-on serves it over HTTP.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import ClassVar

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from esign.plone.errors import PKIError
from esign.plone.signing.keys import SigningKey, public_key_matches, signature_algorithm

__all__ = [
    "TIMESTAMP_QUERY",
    "TIMESTAMP_REPLY",
    "TSA_POLICY_OID",
    "TimeStampAuthority",
    "tsa_certificate_builder",
]

logger = logging.getLogger(__name__)

#: Media type of a timestamp request (RFC 3161 §3.4), POSTed to the TSA.
TIMESTAMP_QUERY = "application/timestamp-query"
#: Media type of a timestamp response. pyHanko's ``HTTPTimeStamper`` refuses any other
#: Content-Type, parameters (``; charset=…``) included: send exactly this.
TIMESTAMP_REPLY = "application/timestamp-reply"

#: The TSA policy (TSTInfo.policy) of esign.plone: an OID under 2.25 made from the
#: UUID a3a52018-1dab-4f88-850e-a471d089122a (ITU-T X.667), so no registration is
#: needed. It stands for "time from the site's system clock, ±``accuracy_seconds``,
#: tokens signed by the site CA's TSA key"; a site with its own policy passes it in.
TSA_POLICY_OID = "2.25.217521543242364918223095982050933019178"

# RFC 3161 lets the TSA choose; SHA-1 and weaker are refused (EN 319 422 §7.1).
_ACCEPTED_HASHES = {"sha256": 32, "sha384": 48, "sha512": 64}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def tsa_certificate_builder(
    *,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    issuer_certificate: x509.Certificate,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    """What the site's TSA certificate has (RFC 3161 §2.3, ETSI EN 319 422 §6.3).

    extendedKeyUsage id-kp-timeStamping only, critical (RFC 3161 requires exactly that);
    keyUsage digitalSignature + contentCommitment, critical; not a CA; key identifiers;
    a random positive serial. The caller adds publication points
    (:func:`.certificates.with_publication` with ``issued_by_root=True``) and signs it
    (:func:`.keys.sign_certificate`).

    :param subject: the TSA's name, e.g. ``CN=<organisation> Time Stamping Authority``.
    :param public_key: the TSA key's public half.
    :param issuer_certificate: the CA that signs it (the site's root).
    :param not_before: start of validity (timezone-aware).
    :param not_after: end of validity; tokens must be verifiable for as long as the
        signatures they date, so years, within the issuer's validity.
    :returns: the unsigned certificate builder.
    """
    try:
        issuer_ski = issuer_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)
    except x509.ExtensionNotFound:
        authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_certificate.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_certificate.subject)
        .public_key(public_key)
        .serial_number(secrets.randbits(127) | 1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(authority_key_id, critical=False)
    )


class _RejectionResp(core.Sequence):
    """TimeStampResp without a token: asn1crypto's ``tsp.TimeStampResp`` wrongly requires one."""

    _fields: ClassVar[list[tuple]] = [("status", tsp.PKIStatusInfo)]


class _Rejection(Exception):
    """A request answered with status ``rejection``."""

    def __init__(self, failure: str, message: str) -> None:
        super().__init__(message)
        self.failure = failure


def _asn1_certificate(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _frozen(spec: type[core.Asn1Value], value) -> core.Asn1Value:
    # asn1crypto re-encodes a structure built from parsed parts (a certificate's Name)
    # on every dump, ~10 ms a token; one parsed from DER keeps its bytes.
    return spec.load(spec(value).dump())


def _cms_time(moment: dt.datetime) -> cms.Time:
    # RFC 5652 §11.3: UTCTime up to 2049, GeneralizedTime from 2050.
    if moment.year < 2050:
        return cms.Time(name="utc_time", value=moment)
    return cms.Time(name="generalized_time", value=moment)


def _is_timestamping_certificate(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return False
    return usage.critical and list(usage.value) == [ExtendedKeyUsageOID.TIME_STAMPING]


class TimeStampAuthority:
    """An RFC 3161 time-stamping authority: timestamp requests in, timestamp responses out.

    Tokens are CMS SignedData over a TSTInfo with the signed attributes content-type,
    message-digest, signing-time and ESS signing-certificate-v2 (SHA-512, with
    issuerSerial), as ETSI EN 319 422 profiles them; SHA-256 digest, signed by ``key``.

    :param certificate: the TSA certificate (see :func:`tsa_certificate_builder`).
    :param key: its key.
    :param chain: CA certificates up to the root, added to tokens when the request asks
        for certificates (``certReq``), so a verifier can build the path from the token.
    :param policy: the TSA policy OID put into every token; requests naming another are refused.
    :param clock: the current time (timezone-aware); defaults to the system clock.
    :param accuracy_seconds: the accuracy claimed for genTime (0 leaves it out).
    :raises PKIError: when the key does not belong to the certificate or the certificate
        is not a timestamping certificate (critical extendedKeyUsage id-kp-timeStamping only).

    Example::

        tsa = TimeStampAuthority(tsa_certificate, tsa_key, chain=[pki.root_certificate])
        response_der = tsa.respond(request_der)  # POST body → body, TIMESTAMP_REPLY
    """

    def __init__(
        self,
        certificate: x509.Certificate,
        key: SigningKey,
        chain: Sequence[x509.Certificate] = (),
        *,
        policy: str = TSA_POLICY_OID,
        clock: Callable[[], dt.datetime] | None = None,
        accuracy_seconds: int = 1,
    ) -> None:
        if not public_key_matches(key, certificate):
            raise PKIError(f"The TSA key ({key.label}) does not belong to the TSA certificate.")
        if not _is_timestamping_certificate(certificate):
            raise PKIError(
                "The TSA certificate must have a critical extendedKeyUsage of id-kp-timeStamping only "
                "(RFC 3161 §2.3)."
            )
        if accuracy_seconds < 0:
            raise PKIError("The TSA accuracy cannot be negative.")
        self.certificate = certificate
        self.policy = policy
        self._key = key
        self._clock = clock or _now
        self._accuracy = accuracy_seconds
        self._certificate_asn1 = _asn1_certificate(certificate)
        self._certificates = _frozen(
            cms.CertificateSet, [self._certificate_asn1, *(_asn1_certificate(c) for c in chain)]
        )
        self._signing_certificate = _frozen(
            tsp.SigningCertificateV2,
            {
                "certs": [
                    {
                        # SHA-512, named explicitly. With the DEFAULT (SHA-256, left out of
                        # the DER) the first reader of the field makes asn1crypto fill the
                        # default in and mark the value changed; once the token sits in a
                        # signature's CMS, every dump() then re-encodes each of the ~17
                        # levels above it twice over (2^17 work, tens of seconds a signature).
                        "hash_algorithm": {"algorithm": "sha512"},
                        "cert_hash": hashlib.sha512(self._certificate_asn1.dump()).digest(),
                        "issuer_serial": {
                            "issuer": [
                                asn1_x509.GeneralName(
                                    name="directory_name", value=self._certificate_asn1.issuer
                                )
                            ],
                            "serial_number": self._certificate_asn1.serial_number,
                        },
                    }
                ]
            },
        )
        self._signer_id = _frozen(
            cms.IssuerAndSerialNumber,
            {"issuer": self._certificate_asn1.issuer, "serial_number": self._certificate_asn1.serial_number},
        )
        self._tsa_name = _frozen(asn1_x509.GeneralName, {"directory_name": self._certificate_asn1.subject})

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER TimeStampReq (the body of a POST).

        A request that cannot be granted gets a TimeStampResp with status ``rejection``
        and a failInfo, not an exception — ``badDataFormat`` for bytes that are not a request
        (or a hash of the wrong length), ``badAlg`` for a hash other than SHA-256/384/512,
        ``unacceptedPolicy`` for another policy, ``unacceptedExtension`` for any extension,
        ``systemFailure`` when the TSA key refuses.

        :param request_der: the request.
        :returns: a DER TimeStampResp, media type :data:`TIMESTAMP_REPLY`.
        """
        try:
            token = self._token(self._parse(request_der))
        except _Rejection as rejection:
            logger.info("Timestamp request rejected (%s): %s", rejection.failure, rejection)
            return self._rejection(rejection.failure, str(rejection))
        except PKIError:
            # The details (which token, which slot) go to the log, not to the requester.
            logger.exception("Timestamp token could not be signed")
            return self._rejection("system_failure", "The time-stamping service cannot sign now.")
        return tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()

    def timestamp(self, digest: bytes, *, algorithm: str = "sha256") -> bytes:
        """A token over ``digest``, for in-process use; same code as :meth:`respond`.

        :param digest: the hash of the timestamped data.
        :param algorithm: its hash algorithm (``sha256``, ``sha384`` or ``sha512``).
        :returns: the DER token (a CMS ContentInfo), with the TSA certificate and chain.
        :raises PKIError: when the request would be rejected or signing fails.
        """
        request = tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": digest},
                "cert_req": True,
            }
        )
        try:
            return self._token(self._parse(request.dump())).dump()
        except _Rejection as rejection:
            raise PKIError(f"The timestamp cannot be made: {rejection}") from rejection

    # -- internals ---------------------------------------------------------------

    @staticmethod
    def _rejection(failure: str, text: str) -> bytes:
        status = {"status": "rejection", "status_string": [text], "fail_info": {failure}}
        return _RejectionResp({"status": status}).dump()

    def _parse(self, request_der: bytes) -> tsp.TimeStampReq:
        try:
            request = tsp.TimeStampReq.load(request_der, strict=True)
            # Parse everything now (asn1crypto is lazy) so bad inner parts are rejected here.
            request.native  # noqa: B018
            version = request["version"].native
            algorithm = request["message_imprint"]["hash_algorithm"]["algorithm"].native
            digest = request["message_imprint"]["hashed_message"].native
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            logger.debug("Unreadable timestamp request: %s", exc)
            raise _Rejection("bad_data_format", "The request is not a DER TimeStampReq.") from exc
        if version != "v1":
            raise _Rejection("bad_data_format", f"Unsupported request version {version}.")
        if algorithm not in _ACCEPTED_HASHES:
            raise _Rejection("bad_alg", f"Hash algorithm {algorithm} is not accepted; use SHA-256.")
        if len(digest) != _ACCEPTED_HASHES[algorithm]:
            raise _Rejection(
                "bad_data_format", f"A {algorithm} digest has {_ACCEPTED_HASHES[algorithm]} octets."
            )
        requested_policy = request["req_policy"].dotted if request["req_policy"].native else None
        if requested_policy is not None and requested_policy != self.policy:
            raise _Rejection("unaccepted_policy", f"This TSA only issues tokens under policy {self.policy}.")
        # RFC 3161 §2.4.1: an extension the TSA does not recognise, critical or not, is refused.
        if request["extensions"].native:
            raise _Rejection("unaccepted_extensions", "This TSA supports no request extensions.")
        return request

    def _tst_info(self, request: tsp.TimeStampReq, gen_time: dt.datetime) -> tsp.TSTInfo:
        info = {
            "version": "v1",
            "policy": self.policy,
            "message_imprint": request["message_imprint"],
            # 127 random bits: unique in practice without a counter shared between
            # processes (RFC 3161 §2.4.2 asks for unique serials up to 160 bits).
            "serial_number": secrets.randbits(127) | 1,
            "gen_time": gen_time,
            "tsa": self._tsa_name,
        }
        if self._accuracy:
            info["accuracy"] = {"seconds": self._accuracy}
        if request["nonce"].native is not None:
            info["nonce"] = request["nonce"].native
        return tsp.TSTInfo(info)

    def _token(self, request: tsp.TimeStampReq) -> cms.ContentInfo:
        now = self._clock()
        if now.tzinfo is None:
            raise PKIError("The TSA clock must give timezone-aware times.")
        # Whole seconds: the truncation stays within the claimed accuracy.
        gen_time = now.astimezone(dt.UTC).replace(microsecond=0)
        if not self.certificate.not_valid_before_utc <= gen_time <= self.certificate.not_valid_after_utc:
            # A token from outside the certificate's validity is worthless to every verifier.
            raise PKIError(f"The TSA certificate is not valid at {gen_time:%Y-%m-%d %H:%M:%S} UTC.")
        tst_info_der = self._tst_info(request, gen_time).dump()
        signed_attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "signing_time", "values": [_cms_time(gen_time)]},
                {"type": "message_digest", "values": [hashlib.sha256(tst_info_der).digest()]},
                {"type": "signing_certificate_v2", "values": [self._signing_certificate]},
            ]
        )
        # The signature covers the DER of the attributes as a SET OF (RFC 5652 §5.4).
        signature = self._key.sign(signed_attrs.dump())
        digest_algorithm = algos.DigestAlgorithm({"algorithm": "sha256"})
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value=self._signer_id),
                "digest_algorithm": digest_algorithm,
                "signed_attrs": signed_attrs,
                "signature_algorithm": signature_algorithm(self._key),
                "signature": signature,
            }
        )
        signed_data = {
            "version": "v3",
            "digest_algorithms": [digest_algorithm],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": core.ParsableOctetString(tst_info_der),
            },
            "signer_infos": [signer_info],
        }
        if request["cert_req"].native:
            signed_data["certificates"] = self._certificates
        return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})
