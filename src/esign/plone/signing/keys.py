"""Keys the site's trust services sign with: in a file (software) or in a token (PKCS#11).

Everything the site CA and its TSA sign — certificates, CRLs, OCSP responses,
timestamp tokens — goes through :class:`SigningKey`, so a key held in an HSM
and a key loaded from an encrypted file are used by the same code. Only SHA-256
is used, with ECDSA (P-256) or RSA PKCS#1 v1.5.
"""

from __future__ import annotations

import functools
from typing import Literal, Protocol, runtime_checkable

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from esign.plone.errors import PKIError

__all__ = [
    "SigningKey",
    "SoftwareKey",
    "key_kind",
    "sign_certificate",
    "sign_crl",
    "signature_algorithm",
]

KeyKind = Literal["ec", "rsa"]


@runtime_checkable
class SigningKey(Protocol):
    """A private key that signs SHA-256 digests of data; the private half may be out of reach."""

    @property
    def public_key(self) -> CertificatePublicKeyTypes:
        """The public half."""
        ...

    @property
    def label(self) -> str:
        """Where the key lives, for messages ("file issuing-key.pem", "PKCS#11 token esign/issuing")."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with SHA-256: a DER ECDSA-Sig-Value for EC keys, PKCS#1 v1.5 for RSA.

        :raises PKIError: when the key (or the token) refuses.
        """
        ...


class SoftwareKey:
    """A ``cryptography`` private key held in this process (loaded from an encrypted file)."""

    def __init__(
        self, private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, *, label: str = ""
    ) -> None:
        self.private_key = private_key
        self._label = label or "software key"

    @property
    def public_key(self) -> CertificatePublicKeyTypes:
        return self.private_key.public_key()

    @property
    def label(self) -> str:
        return self._label

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def key_kind(public_key: CertificatePublicKeyTypes) -> KeyKind:
    """``"ec"`` or ``"rsa"``.

    :raises PKIError: for other key types.
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ec"
    if isinstance(public_key, rsa.RSAPublicKey):
        return "rsa"
    raise PKIError("Only EC and RSA keys are supported for the site CA and TSA.")


def signature_algorithm(key: SigningKey) -> algos.SignedDigestAlgorithm:
    """The asn1crypto algorithm identifier of what :meth:`SigningKey.sign` produces."""
    name = "sha256_ecdsa" if key_kind(key.public_key) == "ec" else "sha256_rsa"
    return algos.SignedDigestAlgorithm({"algorithm": name})


@functools.lru_cache(maxsize=2)
def _placeholder_key(kind: KeyKind) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    # cryptography's builders only sign with keys they hold. For a key in a token the
    # structure is built and signed with a throwaway key of the same kind (so the
    # signature algorithm inside the TBS part is right), then the TBS bytes are signed
    # again by the real key and the result is reassembled. The throwaway signature is
    # discarded; the throwaway key never signs anything that leaves this module.
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign_certificate(builder: x509.CertificateBuilder, key: SigningKey) -> x509.Certificate:
    """Sign a certificate with ``key`` (a file key directly, a token key through its TBS bytes).

    :raises PKIError: when signing fails.
    """
    if isinstance(key, SoftwareKey):
        return builder.sign(key.private_key, hashes.SHA256())
    draft = builder.sign(_placeholder_key(key_kind(key.public_key)), hashes.SHA256())
    tbs = asn1_x509.TbsCertificate.load(draft.tbs_certificate_bytes)
    signed = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": signature_algorithm(key),
            "signature_value": key.sign(draft.tbs_certificate_bytes),
        }
    )
    return x509.load_der_x509_certificate(signed.dump())


def sign_crl(
    builder: x509.CertificateRevocationListBuilder, key: SigningKey
) -> x509.CertificateRevocationList:
    """Sign a CRL with ``key``, as :func:`sign_certificate` does for certificates."""
    from asn1crypto import crl as asn1_crl

    if isinstance(key, SoftwareKey):
        return builder.sign(key.private_key, hashes.SHA256())
    draft = builder.sign(_placeholder_key(key_kind(key.public_key)), hashes.SHA256())
    tbs_bytes = draft.tbs_certlist_bytes
    signed = asn1_crl.CertificateList(
        {
            "tbs_cert_list": asn1_crl.TbsCertList.load(tbs_bytes),
            "signature_algorithm": signature_algorithm(key),
            "signature": key.sign(tbs_bytes),
        }
    )
    return x509.load_der_x509_crl(signed.dump())


def public_key_matches(key: SigningKey, certificate: x509.Certificate) -> bool:
    """Whether ``key`` is the private half of ``certificate``'s public key."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key.public_bytes(der, spki) == certificate.public_key().public_bytes(der, spki)
