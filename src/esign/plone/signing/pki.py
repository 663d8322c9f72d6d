"""The site's own certificate authority: a root CA and an issuing (signing) CA.

The issuing CA signs one certificate per signature (see :mod:`.certificates`).
Its key lives on disk encrypted with a passphrase the site operator configures;
the root key, when we made the root ourselves, is kept beside it (encrypted too)
so the operator can re-issue the signing CA later.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

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
from esign.plone.signing.certificates import as_signing_key, build_signature_certificate, with_publication
from esign.plone.signing.keys import SigningKey, SoftwareKey, public_key_matches, sign_certificate
from esign.plone.signing.values import PublicationPoints, VerifiedIdentity

if TYPE_CHECKING:
    from esign.plone.signing.pkcs11 import Pkcs11Config
    from esign.plone.signing.revocation import CertificateRegistry, OCSPResponder

__all__ = ["SitePKI", "generate_private_key"]

ROOT_CERT = "root.pem"
ROOT_KEY = "root-key.pem"
ISSUING_CERT = "issuing.pem"
ISSUING_KEY = "issuing-key.pem"
TSA_CERT = "tsa.pem"
TSA_KEY = "tsa-key.pem"

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
    """The site's root CA, issuing CA and timestamping authority, with their keys.

    :param root_certificate: the trust anchor verifiers must trust.
    :param issuing_certificate: the CA that issues the one-time signature certificates.
    :param issuing_key: the issuing CA's key: a :class:`.keys.SigningKey` (a file or a
        PKCS#11 token) or a ``cryptography`` private key.
    :param intermediates: CA certificates between the issuing CA and the root (imported PKIs).
    :param root_key: the root's key, when the site made its root itself (signs the root
        CRL and the TSA certificate); ``None`` for an imported CA.
    :param tsa_certificate: the site TSA's certificate (extendedKeyUsage timeStamping).
    :param tsa_key: the site TSA's key.
    :param registry: where issued certificates are recorded (OCSP and CRLs answer from it).
    :param publication: where the OCSP responder, CRLs and CA certificates are served.
    """

    def __init__(
        self,
        *,
        root_certificate: x509.Certificate,
        issuing_certificate: x509.Certificate,
        issuing_key: SigningKey | CertificateIssuerPrivateKeyTypes,
        intermediates: Sequence[x509.Certificate] = (),
        root_key: SigningKey | None = None,
        tsa_certificate: x509.Certificate | None = None,
        tsa_key: SigningKey | None = None,
        registry: CertificateRegistry | None = None,
        publication: PublicationPoints | None = None,
    ) -> None:
        self._root = root_certificate
        self._issuing = issuing_certificate
        self._issuing_key = as_signing_key(issuing_key)
        self._intermediates = tuple(intermediates)
        self._root_key = root_key
        self._tsa_certificate = tsa_certificate
        self._tsa_key = tsa_key
        self.registry = registry
        self.publication = publication

    def bound(
        self, *, registry: CertificateRegistry | None, publication: PublicationPoints | None
    ) -> SitePKI:
        """This PKI, recording what it issues in ``registry`` and naming ``publication``.

        The keys and certificates are shared (one load per process); the registry and the
        public addresses belong to one site and one request.
        """
        clone = copy.copy(self)
        clone.registry = registry
        clone.publication = publication
        return clone

    # -- creation and storage -------------------------------------------------

    @staticmethod
    def exists(directory: Path | str) -> bool:
        """Tell whether ``directory`` holds a stored PKI.

        :param directory: the PKI directory.
        :returns: ``True`` when the certificates are there (the issuing key may be in a token).
        """
        directory = Path(directory)
        return all((directory / name).is_file() for name in (ROOT_CERT, ISSUING_CERT))

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
        issuing_key: SigningKey | None = None,
        publication: PublicationPoints | None = None,
    ) -> SitePKI:
        """Make a new root CA (30 years) and issuing CA (20 years) and store them.

        Longer than signed documents are kept (retention, default 10 years): pyHanko's
        AdES validation treats an expired CA certificate in the signer's chain as a chain
        failure that no document timestamp can repair, while an expired one-time or TSA
        certificate is covered by the archive timestamps.

        :param directory: where to write ``root.pem``, ``root-key.pem``, ``issuing.pem``
            and ``issuing-key.pem``; created with mode 0700.
        :param passphrase: encrypts the private keys kept in files (PKCS#8).
        :param organisation: names the CAs ("<organisation> Root CA", "<organisation> Signing CA").
        :param country: two-letter country code of the CA names.
        :param key_algorithm: ``"ec-p256"`` or ``"rsa-3072"``.
        :param now: start of validity; defaults to the current time.
        :param issuing_key: a key made elsewhere for the issuing CA (a PKCS#11 token key);
            by default a new key is made and stored encrypted beside the certificates.
        :param publication: accepted for symmetry with the other issuers; the issuing CA
            certificate names no CRL address (see the comment in the body).
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
        file_issuing_key = None if issuing_key is not None else generate_private_key(key_algorithm)
        issuing_signing_key = issuing_key or SoftwareKey(file_issuing_key, label=ISSUING_KEY)

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
            years=30,
        ).sign(root_key, hashes.SHA256())
        issuing_builder = _ca_builder(
            subject=name(f"{organisation} Signing CA"),
            issuer=root_name,
            public_key=issuing_signing_key.public_key,
            issuer_public_key=root_key.public_key(),
            # The issuing CA only issues end-entity (signature) certificates.
            path_length=0,
            not_before=now,
            years=20,
        )
        # No cRLDistributionPoints in the issuing CA certificate, although the root CRL is
        # published (and goes into every DSS): poppler/NSS, seeing one there, fails the
        # certificate check of every signature after the first timestamped one ("Unknown
        # issue"), with or without the CRL reachable. Validators find the root CRL by issuer.
        del publication
        issuing = issuing_builder.sign(root_key, hashes.SHA256())
        pki = cls(
            root_certificate=root,
            issuing_certificate=issuing,
            issuing_key=issuing_signing_key,
            root_key=SoftwareKey(root_key, label=ROOT_KEY),
        )
        pki._store(directory, passphrase=passphrase, root_key=root_key, issuing_key=file_issuing_key)
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
        directory = Path(directory)
        # A new CA makes the old root's key, and the TSA it certified, meaningless here.
        for stale in (ROOT_KEY, TSA_CERT, TSA_KEY):
            (directory / stale).unlink(missing_ok=True)
        pki = cls(
            root_certificate=chain[-1],
            issuing_certificate=certificate,
            issuing_key=SoftwareKey(key, label=ISSUING_KEY),
            intermediates=chain[1:-1],
        )
        pki._store(directory, passphrase=passphrase, root_key=None, issuing_key=key)
        return pki

    @classmethod
    def load(cls, directory: Path | str, *, passphrase: bytes, hsm: Pkcs11Config | None = None) -> SitePKI:
        """Read a stored PKI.

        :param directory: the PKI directory.
        :param passphrase: the passphrase the file keys were stored with.
        :param hsm: a PKCS#11 token holding the issuing CA key and/or the TSA key (by label);
            keys not in the token are read from the directory.
        :returns: the PKI.
        :raises PKIError: when files are missing or unreadable, the passphrase is wrong, or a
            key does not belong to its certificate.
        """
        directory = Path(directory)
        if not cls.exists(directory):
            raise PKIError(f"No site PKI in {directory}: create one or import a PKCS#12 file.")
        try:
            root = x509.load_pem_x509_certificate((directory / ROOT_CERT).read_bytes())
            issuing_chain = x509.load_pem_x509_certificates((directory / ISSUING_CERT).read_bytes())
        except (OSError, ValueError) as exc:
            raise PKIError(f"The site PKI in {directory} cannot be read: {exc}") from exc
        issuing, *intermediates = issuing_chain
        if hsm is not None and hsm.ca_key_label:
            issuing_key: SigningKey = _token_key(hsm, hsm.ca_key_label)
        else:
            issuing_key = _file_key(directory / ISSUING_KEY, passphrase)
        if not public_key_matches(issuing_key, issuing):
            raise PKIError(
                f"The issuing CA key ({issuing_key.label}) does not belong to the issuing CA certificate."
            )
        root_key = None
        if (directory / ROOT_KEY).is_file():
            root_key = _file_key(directory / ROOT_KEY, passphrase)
        tsa_certificate = tsa_key = None
        if (directory / TSA_CERT).is_file():
            try:
                tsa_certificate = x509.load_pem_x509_certificate((directory / TSA_CERT).read_bytes())
            except (OSError, ValueError) as exc:
                raise PKIError(f"The TSA certificate in {directory} cannot be read: {exc}") from exc
            if hsm is not None and hsm.tsa_key_label:
                tsa_key = _token_key(hsm, hsm.tsa_key_label)
            else:
                tsa_key = _file_key(directory / TSA_KEY, passphrase)
            if not public_key_matches(tsa_key, tsa_certificate):
                raise PKIError(f"The TSA key ({tsa_key.label}) does not belong to the TSA certificate.")
        return cls(
            root_certificate=root,
            issuing_certificate=issuing,
            issuing_key=issuing_key,
            intermediates=intermediates,
            root_key=root_key,
            tsa_certificate=tsa_certificate,
            tsa_key=tsa_key,
        )

    def _store(
        self,
        directory: Path,
        *,
        passphrase: bytes,
        root_key: CertificateIssuerPrivateKeyTypes | None,
        issuing_key: CertificateIssuerPrivateKeyTypes | None,
    ) -> None:
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask; the CA directory must not be listable by others.
            directory.chmod(0o700)
            pem = serialization.Encoding.PEM
            _write_atomically(directory / ROOT_CERT, self._root.public_bytes(pem), mode=0o644)
            issuing_pem = b"".join(c.public_bytes(pem) for c in (self._issuing, *self._intermediates))
            _write_atomically(directory / ISSUING_CERT, issuing_pem, mode=0o644)
            if issuing_key is not None:
                _write_atomically(
                    directory / ISSUING_KEY, _encrypted_pem(issuing_key, passphrase), mode=0o600
                )
            else:
                # The key is in a token: no stale file key may stand in for it.
                (directory / ISSUING_KEY).unlink(missing_ok=True)
            if root_key is not None:
                _write_atomically(directory / ROOT_KEY, _encrypted_pem(root_key, passphrase), mode=0o600)
        except OSError as exc:
            raise PKIError(f"The site PKI cannot be written to {directory}: {exc}") from exc

    # -- the timestamping authority ----------------------------------------------

    def issue_tsa(
        self,
        directory: Path | str,
        *,
        passphrase: bytes,
        years: int,
        key: SigningKey | None = None,
        key_algorithm: CAKeyAlgorithm = "ec-p256",
        now: dt.datetime | None = None,
    ) -> SitePKI:
        """Give the site a (new) TSA certificate and key; the previous one stays valid until it expires.

        The root certifies the TSA when the site made its root itself (the TSA then
        outlives the issuing CA); an imported CA certifies it otherwise.

        :param directory: the PKI directory (``tsa.pem`` and, for a file key, ``tsa-key.pem``).
        :param years: validity of the TSA certificate.
        :param key: a key made elsewhere (PKCS#11 token); by default a new file key.
        :returns: this PKI with the new TSA (a new object).
        :raises PKIError: when the certificate cannot be issued or stored.
        """
        from esign.plone.signing.tsa import tsa_certificate_builder

        directory = Path(directory)
        now = now or dt.datetime.now(dt.UTC)
        file_key = None if key is not None else generate_private_key(key_algorithm)
        tsa_key = key or SoftwareKey(file_key, label=TSA_KEY)
        by_root = self._root_key is not None
        issuer_certificate = self._root if by_root else self._issuing
        issuer_key = self._root_key if by_root else self._issuing_key
        organisation = _organisation_of(self._issuing)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, _country_of(self._issuing)),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} Time Stamping Authority"[:64]),
            ]
        )
        not_after = min(
            now + dt.timedelta(days=365 * years + years // 4), issuer_certificate.not_valid_after_utc
        )
        try:
            builder = tsa_certificate_builder(
                subject=subject,
                public_key=tsa_key.public_key,
                issuer_certificate=issuer_certificate,
                not_before=now - dt.timedelta(minutes=1),
                not_after=not_after,
            )
            certificate = sign_certificate(
                with_publication(builder, self.publication, issued_by_root=by_root), issuer_key
            )
        except (ValueError, TypeError) as exc:
            raise PKIError(f"The TSA certificate cannot be issued: {exc}") from exc
        try:
            if file_key is not None:
                _write_atomically(directory / TSA_KEY, _encrypted_pem(file_key, passphrase), mode=0o600)
            else:
                (directory / TSA_KEY).unlink(missing_ok=True)
            pem = certificate.public_bytes(serialization.Encoding.PEM)
            _write_atomically(directory / TSA_CERT, pem, mode=0o644)
        except OSError as exc:
            raise PKIError(f"The TSA certificate cannot be written to {directory}: {exc}") from exc
        self._record(certificate, kind="tsa")
        clone = copy.copy(self)
        clone._tsa_certificate = certificate
        clone._tsa_key = tsa_key
        return clone

    @property
    def tsa_certificate(self) -> x509.Certificate | None:
        """The site TSA's certificate, ``None`` before :meth:`issue_tsa`."""
        return self._tsa_certificate

    @property
    def tsa_chain(self) -> tuple[x509.Certificate, ...]:
        """The TSA certificate's issuers up to the root."""
        if self._tsa_certificate is None:
            return ()
        if self._root_key is not None and self._tsa_certificate.issuer == self._root.subject:
            return (self._root,)
        return self.chain

    def timestamp_authority(self, *, clock=None):
        """The site's RFC 3161 timestamping authority (:class:`.tsa.TimeStampAuthority`).

        :raises PKIError: when the site has no TSA certificate yet.
        """
        from esign.plone.signing.tsa import TimeStampAuthority

        if self._tsa_certificate is None or self._tsa_key is None:
            raise PKIError("The site has no timestamping authority yet.")
        return TimeStampAuthority(self._tsa_certificate, self._tsa_key, self.tsa_chain, clock=clock)

    # -- revocation ----------------------------------------------------------------

    def _record(self, certificate: x509.Certificate, *, kind: str) -> None:
        if self.registry is not None:
            self.registry.add(certificate, kind=kind)

    def ocsp_responder(self, *, clock=None) -> OCSPResponder:
        """The OCSP responder for certificates of the issuing CA, answering from the registry.

        :raises PKIError: without a registry.
        """
        from esign.plone.signing.revocation import OCSPResponder

        if self.registry is None:
            raise PKIError("No registry of issued certificates: OCSP cannot answer.")
        return OCSPResponder(self._issuing, self._issuing_key, self.registry, clock=clock)

    def root_ocsp_responder(self, *, clock=None) -> OCSPResponder | None:
        """The OCSP responder for what the root certified (TSA certificates); ``None`` for an imported CA."""
        from esign.plone.signing.revocation import OCSPResponder

        if self._root_key is None or self.registry is None:
            return None
        return OCSPResponder(self._root, self._root_key, self.registry, clock=clock)

    def tsa_status(
        self, certificates: Sequence[x509.Certificate], *, now: dt.datetime | None = None
    ) -> list[bytes]:
        """OCSP responses (DER) about TSA certificates of this site, made in process, for a DSS."""
        responses = []
        clock = (lambda: now) if now is not None else None
        for certificate in certificates:
            if self._root_key is not None and certificate.issuer == self._root.subject:
                responder = self.root_ocsp_responder(clock=clock)
            else:
                # Certified by the issuing CA (an imported CA without its root key): the
                # issuing CRL speaks for it (see ltv.validation_context) — a second OCSP
                # answer of the same CA beside the signer's confuses pyHanko's matching.
                # Not ours at all (an external TSA): fetched, if allowed.
                responder = None
            if responder is not None:
                responses.append(responder.response_for(certificate))
        return responses

    @property
    def tsa_certified_by_issuing_ca(self) -> bool:
        """Whether the site TSA's certificate comes from the issuing CA (an imported CA)."""
        return (
            self._tsa_certificate is not None
            and self._tsa_certificate.issuer == self._issuing.subject
            and (self._root_key is None or self._tsa_certificate.issuer != self._root.subject)
        )

    def issuing_crl(
        self, *, now: dt.datetime | None = None, next_update: dt.timedelta = dt.timedelta(days=1)
    ) -> bytes:
        """The issuing CA's CRL (DER): revoked certificates it issued, from the registry."""
        from esign.plone.signing.revocation import build_crl

        now = now or dt.datetime.now(dt.UTC)
        # Without a registry nothing was recorded as revoked: an empty (but signed, current) CRL.
        recorded = self.registry.revoked() if self.registry is not None else ()
        revoked = [c for c in recorded if c.kind not in ("tsa", "ca") or self._root_key is None]
        return build_crl(
            self._issuing,
            self._issuing_key,
            revoked,
            number=int(now.timestamp() * 1000),
            this_update=now,
            next_update=now + next_update,
        )

    def root_crl(
        self, *, now: dt.datetime | None = None, next_update: dt.timedelta = dt.timedelta(days=7)
    ) -> bytes | None:
        """The root CA's CRL (DER) over what the root certified (issuing CA, TSA); ``None`` if imported."""
        from esign.plone.signing.revocation import build_crl

        if self._root_key is None:
            return None
        now = now or dt.datetime.now(dt.UTC)
        revoked = [c for c in (self.registry.revoked() if self.registry else ()) if c.kind in ("tsa", "ca")]
        return build_crl(
            self._root,
            self._root_key,
            revoked,
            number=int(now.timestamp() * 1000),
            this_update=now,
            next_update=now + next_update,
        )

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
    def issuing_key_label(self) -> str:
        """Where the issuing CA key lives (a file, a token), for the control panel."""
        return self._issuing_key.label

    @property
    def tsa_key_label(self) -> str:
        """Where the TSA key lives, for the control panel ("" before there is a TSA)."""
        return self._tsa_key.label if self._tsa_key is not None else ""

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Issuing CA, any intermediates, then the root: what a signature embeds."""
        return (self._issuing, *self._intermediates, self._root)

    def fingerprints(self) -> dict[str, str]:
        """SHA-256 fingerprints for the control panel.

        :returns: ``{"root": "AB:CD:…", "issuing": "…"}`` (and ``"tsa"`` when there is one).
        """
        prints = {"root": _fingerprint(self._root), "issuing": _fingerprint(self._issuing)}
        if self._tsa_certificate is not None:
            prints["tsa"] = _fingerprint(self._tsa_certificate)
        return prints

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
            certificate = build_seal_certificate(
                organisation,
                public_key,
                issuer_certificate=self._issuing,
                issuer_key=self._issuing_key,
                validity=validity,
                now=now,
                publication=self.publication,
            )
        except (ValueError, TypeError) as exc:
            raise PKIError(f"The seal certificate cannot be issued: {exc}") from exc
        self._record(certificate, kind="seal")
        return certificate

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
        :returns: the certificate (recorded in the registry when there is one).
        :raises PKIError: when the identity cannot be put in a certificate or the CA key fails.
        """
        try:
            certificate = build_signature_certificate(
                identity,
                public_key,
                issuer_certificate=self._issuing,
                issuer_key=self._issuing_key,
                validity=validity,
                organisation=organisation,
                now=now,
                publication=self.publication,
            )
        except (ValueError, TypeError, x509.ExtensionNotFound) as exc:
            raise PKIError(f"The signature certificate cannot be issued: {exc}") from exc
        self._record(certificate, kind="signature")
        return certificate


def _file_key(path: Path, passphrase: bytes) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=passphrase)
    except FileNotFoundError:
        raise PKIError(
            f"The key file {path.name} is missing (and no PKCS#11 token is configured for it)."
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise PKIError(f"The key {path.name} cannot be decrypted: wrong passphrase?") from exc
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise PKIError("Only EC and RSA CA keys are supported.")
    return SoftwareKey(key, label=path.name)


def _token_key(config: Pkcs11Config, label: str) -> SigningKey:
    from esign.plone.signing.pkcs11 import open_token_key

    return open_token_key(config, label)


def _name_attribute(certificate: x509.Certificate, oid: x509.ObjectIdentifier, default: str) -> str:
    values = certificate.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else default


def _organisation_of(certificate: x509.Certificate) -> str:
    return _name_attribute(certificate, NameOID.ORGANIZATION_NAME, "E-underskrift")


def _country_of(certificate: x509.Certificate) -> str:
    return _name_attribute(certificate, NameOID.COUNTRY_NAME, "SE")
