"""The site's own certificate authority: a root CA and an issuing (signing) CA.

The issuing CA signs one certificate per signature (see :mod:`.certificates`).
Its key lives on disk encrypted with a passphrase the site operator configures;
the root key, when we made the root ourselves, is kept beside it (encrypted too)
so the operator can re-issue the signing CA later.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from esign.plone.errors import PKIError
from esign.plone.signing.certificates import build_signature_certificate
from esign.plone.signing.values import VerifiedIdentity

__all__ = ["SitePKI", "generate_private_key"]

ROOT_CERT = "root.pem"
ROOT_KEY = "root-key.pem"
ISSUING_CERT = "issuing.pem"
ISSUING_KEY = "issuing-key.pem"

CAKeyAlgorithm = Literal["ec-p256", "rsa-3072"]


def generate_private_key(algorithm: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    """Make a new private key.

    :param algorithm: ``"ec-p256"`` or ``"rsa-3072"``.
    :returns: the key (a ``cryptography`` object, never serialised here).
    :raises ValueError: for an unknown algorithm.
    """
    if algorithm == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(f"unknown key algorithm {algorithm!r}")


def _fingerprint(certificate: x509.Certificate) -> str:
    return ":".join(f"{b:02X}" for b in certificate.fingerprint(hashes.SHA256()))


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    # Write-then-rename so a crash never leaves a half-written key, and create the
    # temporary file with the final mode so the key is never readable by others.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _encrypted_pem(key: CertificateIssuerPrivateKeyTypes, passphrase: bytes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def _ca_builder(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificatePublicKeyTypes,
    issuer_public_key: CertificatePublicKeyTypes,
    path_length: int | None,
    not_before: dt.datetime,
    years: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=365 * years + years // 4))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False)
    )


def _is_self_signed(certificate: x509.Certificate) -> bool:
    if certificate.issuer != certificate.subject:
        return False
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, x509.InvalidSignature):
        return False
    return True


def _build_chain(leaf: x509.Certificate, pool: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    chain = [leaf]
    current = leaf
    while not _is_self_signed(current):
        parent = None
        for candidate in pool:
            if candidate.subject != current.issuer or candidate in chain:
                continue
            try:
                current.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, x509.InvalidSignature):
                continue
            parent = candidate
            break
        if parent is None:
            raise PKIError(
                "The PKCS#12 file does not contain the chain up to a root CA "
                f"(missing the issuer of {current.subject.rfc4514_string()})."
            )
        chain.append(parent)
        current = parent
    return chain


class SitePKI:
    """The site's root CA and issuing CA, with the issuing CA's private key.

    :param root_certificate: the trust anchor verifiers must trust.
    :param issuing_certificate: the CA that issues the one-time signature certificates.
    :param issuing_key: private key of ``issuing_certificate``.
    :param intermediates: CA certificates between the issuing CA and the root (imported PKIs).
    """

    def __init__(
        self,
        *,
        root_certificate: x509.Certificate,
        issuing_certificate: x509.Certificate,
        issuing_key: CertificateIssuerPrivateKeyTypes,
        intermediates: Sequence[x509.Certificate] = (),
    ) -> None:
        self._root = root_certificate
        self._issuing = issuing_certificate
        self._issuing_key = issuing_key
        self._intermediates = tuple(intermediates)

    # -- creation and storage -------------------------------------------------

    @staticmethod
    def exists(directory: Path | str) -> bool:
        """Tell whether ``directory`` holds a stored PKI.

        :param directory: the PKI directory.
        :returns: ``True`` when the certificates and the issuing key are there.
        """
        directory = Path(directory)
        return all((directory / name).is_file() for name in (ROOT_CERT, ISSUING_CERT, ISSUING_KEY))

    @classmethod
    def create(
        cls,
        directory: Path | str,
        *,
        passphrase: bytes,
        organisation: str,
        country: str = "SE",
        key_algorithm: CAKeyAlgorithm = "ec-p256",
        now: dt.datetime | None = None,
    ) -> SitePKI:
        """Make a new root CA (20 years) and issuing CA (10 years) and store them.

        :param directory: where to write ``root.pem``, ``root-key.pem``, ``issuing.pem``
            and ``issuing-key.pem``; created with mode 0700.
        :param passphrase: encrypts both private keys (PKCS#8).
        :param organisation: names the CAs ("<organisation> Root CA", "<organisation> Signing CA").
        :param country: two-letter country code of the CA names.
        :param key_algorithm: ``"ec-p256"`` or ``"rsa-3072"``.
        :param now: start of validity; defaults to the current time.
        :returns: the new PKI.
        :raises PKIError: when a PKI already exists there or the passphrase is empty.
        """
        directory = Path(directory)
        if not passphrase:
            raise PKIError("A passphrase is needed to protect the CA keys.")
        if cls.exists(directory):
            raise PKIError(f"A PKI already exists in {directory}; refusing to overwrite it.")
        now = now or dt.datetime.now(dt.UTC)
        root_key = generate_private_key(key_algorithm)
        issuing_key = generate_private_key(key_algorithm)

        def name(common_name: str) -> x509.Name:
            return x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, country),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )

        root_name = name(f"{organisation} Root CA")
        root = _ca_builder(
            subject=root_name,
            issuer=root_name,
            public_key=root_key.public_key(),
            issuer_public_key=root_key.public_key(),
            path_length=1,
            not_before=now,
            years=20,
        ).sign(root_key, hashes.SHA256())
        issuing = _ca_builder(
            subject=name(f"{organisation} Signing CA"),
            issuer=root_name,
            public_key=issuing_key.public_key(),
            issuer_public_key=root_key.public_key(),
            # The issuing CA only issues end-entity (signature) certificates.
            path_length=0,
            not_before=now,
            years=10,
        ).sign(root_key, hashes.SHA256())
        pki = cls(root_certificate=root, issuing_certificate=issuing, issuing_key=issuing_key)
        pki._store(directory, passphrase=passphrase, root_key=root_key)
        return pki

    @classmethod
    def import_pkcs12(
        cls,
        directory: Path | str,
        data: bytes,
        *,
        password: bytes | None,
        passphrase: bytes,
    ) -> SitePKI:
        """Use an existing issuing CA, given as PKCS#12 with its chain up to a root.

        :param directory: where to store the PKI (as :meth:`create` does, without a root key).
        :param data: the PKCS#12 bytes.
        :param password: the PKCS#12 password, ``None`` when it has none.
        :param passphrase: encrypts the stored issuing key.
        :returns: the imported PKI.
        :raises PKIError: for a wrong password, a missing key, a certificate that is not a
            CA allowed to sign certificates, or a chain that does not reach a root.
        """
        if not passphrase:
            raise PKIError("A passphrase is needed to protect the CA key.")
        try:
            key, certificate, additional = pkcs12.load_key_and_certificates(data, password)
        except (ValueError, TypeError) as exc:
            raise PKIError("The PKCS#12 file cannot be opened: wrong password or not PKCS#12.") from exc
        if key is None or certificate is None:
            raise PKIError("The PKCS#12 file must contain the issuing CA's private key and certificate.")
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise PKIError("Only EC and RSA issuing CA keys are supported.")
        if key.public_key().public_numbers() != certificate.public_key().public_numbers():
            raise PKIError("The private key in the PKCS#12 file does not belong to its certificate.")
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
            usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound as exc:
            raise PKIError(
                "The certificate is not a CA certificate (basicConstraints/keyUsage missing)."
            ) from exc
        if not constraints.ca or not usage.key_cert_sign:
            raise PKIError("The certificate is not a CA certificate allowed to sign certificates.")
        chain = _build_chain(certificate, additional)
        pki = cls(
            root_certificate=chain[-1],
            issuing_certificate=certificate,
            issuing_key=key,
            intermediates=chain[1:-1],
        )
        pki._store(Path(directory), passphrase=passphrase, root_key=None)
        return pki

    @classmethod
    def load(cls, directory: Path | str, *, passphrase: bytes) -> SitePKI:
        """Read a stored PKI.

        :param directory: the PKI directory.
        :param passphrase: the passphrase the issuing key was stored with.
        :returns: the PKI.
        :raises PKIError: when files are missing or unreadable, or the passphrase is wrong.
        """
        directory = Path(directory)
        if not cls.exists(directory):
            raise PKIError(f"No site PKI in {directory}: create one or import a PKCS#12 file.")
        try:
            root = x509.load_pem_x509_certificate((directory / ROOT_CERT).read_bytes())
            issuing_chain = x509.load_pem_x509_certificates((directory / ISSUING_CERT).read_bytes())
            key_pem = (directory / ISSUING_KEY).read_bytes()
        except (OSError, ValueError) as exc:
            raise PKIError(f"The site PKI in {directory} cannot be read: {exc}") from exc
        try:
            key = serialization.load_pem_private_key(key_pem, password=passphrase)
        except (ValueError, TypeError) as exc:
            raise PKIError("The issuing CA key cannot be decrypted: wrong passphrase?") from exc
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise PKIError("Only EC and RSA issuing CA keys are supported.")
        issuing, *intermediates = issuing_chain
        if key.public_key().public_numbers() != issuing.public_key().public_numbers():
            raise PKIError("The issuing CA key does not belong to the issuing CA certificate.")
        return cls(
            root_certificate=root, issuing_certificate=issuing, issuing_key=key, intermediates=intermediates
        )

    def _store(
        self, directory: Path, *, passphrase: bytes, root_key: CertificateIssuerPrivateKeyTypes | None
    ) -> None:
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask; the CA directory must not be listable by others.
            directory.chmod(0o700)
            pem = serialization.Encoding.PEM
            _write_atomically(directory / ROOT_CERT, self._root.public_bytes(pem), mode=0o644)
            issuing_pem = b"".join(c.public_bytes(pem) for c in (self._issuing, *self._intermediates))
            _write_atomically(directory / ISSUING_CERT, issuing_pem, mode=0o644)
            _write_atomically(
                directory / ISSUING_KEY, _encrypted_pem(self._issuing_key, passphrase), mode=0o600
            )
            if root_key is not None:
                _write_atomically(directory / ROOT_KEY, _encrypted_pem(root_key, passphrase), mode=0o600)
        except OSError as exc:
            raise PKIError(f"The site PKI cannot be written to {directory}: {exc}") from exc

    # -- what the rest of the add-on reads ---------------------------------------

    @property
    def root_certificate(self) -> x509.Certificate:
        """The trust anchor to hand to verifiers (and to :func:`.validate_pdf`)."""
        return self._root

    @property
    def issuing_certificate(self) -> x509.Certificate:
        """The CA certificate that issues one-time signature certificates."""
        return self._issuing

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Issuing CA, any intermediates, then the root: what a signature embeds."""
        return (self._issuing, *self._intermediates, self._root)

    def fingerprints(self) -> dict[str, str]:
        """SHA-256 fingerprints for the control panel.

        :returns: ``{"root": "AB:CD:…", "issuing": "…"}``.
        """
        return {"root": _fingerprint(self._root), "issuing": _fingerprint(self._issuing)}

    def root_pem(self) -> bytes:
        """The root certificate as PEM, for download into a verifier's trust store.

        :returns: PEM bytes.
        """
        return self._root.public_bytes(serialization.Encoding.PEM)

    def issue_seal_certificate(
        self,
        organisation: str,
        public_key: CertificatePublicKeyTypes,
        *,
        validity: dt.timedelta,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """Issue a one-time certificate for a seal in the organisation's name (e.g. the Signeringsbevis).

        :raises PKIError: when the certificate cannot be issued.
        """
        from esign.plone.signing.seal import build_seal_certificate

        try:
            return build_seal_certificate(
                organisation,
                public_key,
                issuer_certificate=self._issuing,
                issuer_key=self._issuing_key,
                validity=validity,
                now=now,
            )
        except (ValueError, TypeError) as exc:
            raise PKIError(f"The seal certificate cannot be issued: {exc}") from exc

    def issue_one_time_certificate(
        self,
        identity: VerifiedIdentity,
        public_key: CertificatePublicKeyTypes,
        *,
        validity: dt.timedelta,
        organisation: str = "",
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """Issue a signature certificate for one signature (Sweden Connect profile).

        :param identity: the verified signer.
        :param public_key: the public key of the fresh one-time key pair.
        :param validity: lifetime from ``now``; minutes are enough since nothing but this
            one signature is ever made with the key.
        :param organisation: subject ``O`` when not empty.
        :param now: issuing moment; defaults to the current time.
        :returns: the certificate.
        :raises PKIError: when the identity cannot be put in a certificate or the CA key fails.
        """
        try:
            return build_signature_certificate(
                identity,
                public_key,
                issuer_certificate=self._issuing,
                issuer_key=self._issuing_key,
                validity=validity,
                organisation=organisation,
                now=now,
            )
        except (ValueError, TypeError, x509.ExtensionNotFound) as exc:
            raise PKIError(f"The signature certificate cannot be issued: {exc}") from exc
