"""Keys of the site CA and TSA held in a PKCS#11 token (an HSM; SoftHSM2 in tests).

A key in a token never leaves it: the token signs, this module hands it the
bytes (EC: a SHA-256 digest; RSA: the data) and turns the answer into what
:class:`.keys.SigningKey` promises. The rest of the signing engine cannot tell a
:class:`Pkcs11Key` from a :class:`.keys.SoftwareKey`.

Configuration comes from the environment (see :meth:`Pkcs11Config.from_environ`),
so the PIN stays out of the ZODB and out of the control panel.

PKCS#11 has two process-wide states that shape the design:

* the login belongs to the application, not to a session: logging out (or
  closing the last logged-in session) logs out every session on that token;
* python-pkcs11 initialises the module without locking callbacks, which by the
  specification allows the module to assume it is never called from two threads
  at once.

So every token gets one logged-in session per process, shared by all keys in it,
and every call into a module runs under that module's lock. A signature takes a
fraction of a millisecond in SoftHSM2 and a few in a hardware HSM; the lock is
not what limits a Plone site.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from asn1crypto import core as asn1_core
from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11_errors
from pkcs11 import lib as load_pkcs11_library
from pkcs11.util.ec import encode_named_curve_parameters

from esign.plone.errors import PKIError
from esign.plone.signing.keys import KeyKind, key_kind

__all__ = [
    "ENV_CA_KEY_LABEL",
    "ENV_MODULE",
    "ENV_PIN",
    "ENV_PIN_FILE",
    "ENV_TOKEN",
    "ENV_TSA_KEY_LABEL",
    "Pkcs11Config",
    "Pkcs11Key",
    "generate_token_key",
    "open_token_key",
]

ENV_MODULE = "ESIGN_PKCS11_MODULE"
ENV_TOKEN = "ESIGN_PKCS11_TOKEN"  # noqa: S105 - a variable name, not a secret
ENV_PIN = "ESIGN_PKCS11_PIN"
ENV_PIN_FILE = "ESIGN_PKCS11_PIN_FILE"
ENV_CA_KEY_LABEL = "ESIGN_PKCS11_CA_KEY_LABEL"
ENV_TSA_KEY_LABEL = "ESIGN_PKCS11_TSA_KEY_LABEL"

#: RSA keys made in a token have the size the file-based site CA uses ("rsa-3072").
RSA_KEY_BITS = 3072

_T = TypeVar("_T")

# Errors after which the session (or the whole module state) is gone: the HSM was
# restarted, the module re-initialised, the token pulled and put back, someone logged
# the token out. One fresh session and one retry fix all of them once the token is back.
_SESSION_LOST: tuple[type[p11_errors.PKCS11Error], ...] = (
    p11_errors.SessionHandleInvalid,
    p11_errors.SessionClosed,
    p11_errors.UserNotLoggedIn,
    p11_errors.DeviceRemoved,
    p11_errors.DeviceError,
    p11_errors.TokenNotPresent,
    p11_errors.TokenNotRecognised,
    p11_errors.ObjectHandleInvalid,
    p11_errors.KeyHandleInvalid,
)
# After these the session handle means nothing any more, and closing it could close a
# newer session that happens to get the same number (SoftHSM2 counts from 1 again
# after a re-initialisation).
_HANDLE_DEAD: tuple[type[p11_errors.PKCS11Error], ...] = (
    p11_errors.SessionHandleInvalid,
    p11_errors.SessionClosed,
)


@dataclasses.dataclass(frozen=True)
class Pkcs11Config:
    """Where the site's CA and TSA keys live in a PKCS#11 token, and how to log in."""

    #: Path of the PKCS#11 module (shared library), e.g. ``/usr/lib/softhsm/libsofthsm2.so``.
    module: str
    #: Label of the token (``softhsm2-util --init-token --label``).
    token_label: str
    #: The user PIN. Never shown: not in ``repr``, not in any error message.
    pin: str = dataclasses.field(repr=False)
    #: Label of the issuing CA's private key, ``None`` when that key is kept in a file.
    ca_key_label: str | None = None
    #: Label of the timestamping unit's private key, ``None`` when that key is kept in a file.
    tsa_key_label: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Pkcs11Config | None:
        """Read the configuration from environment variables.

        ``ESIGN_PKCS11_MODULE`` (the module's path), ``ESIGN_PKCS11_TOKEN`` (token label),
        ``ESIGN_PKCS11_PIN`` or ``ESIGN_PKCS11_PIN_FILE`` (a file holding the PIN, e.g. a
        systemd or container secret), ``ESIGN_PKCS11_CA_KEY_LABEL`` and/or
        ``ESIGN_PKCS11_TSA_KEY_LABEL``. Empty values count as unset.

        Example::

            config = Pkcs11Config.from_environ(os.environ)
            if config and config.ca_key_label:
                issuing_key = open_token_key(config, config.ca_key_label)

        :param environ: usually ``os.environ``.
        :returns: the configuration, or ``None`` when no ESIGN_PKCS11_* variable is set
            (keys are then kept in files).
        :raises PKIError: for half a configuration: variables set without the module, a
            module that is not a file, no token, no PIN or both PIN variables, an unreadable
            or empty PIN file, or no key label. The message names variables, never the PIN.
        """

        def value(name: str) -> str | None:
            return (environ.get(name) or "").strip() or None

        module = value(ENV_MODULE)
        if module is None:
            others = [
                name
                for name in (ENV_TOKEN, ENV_PIN, ENV_PIN_FILE, ENV_CA_KEY_LABEL, ENV_TSA_KEY_LABEL)
                if value(name)
            ]
            if others:
                raise PKIError(
                    f"{', '.join(others)} set but {ENV_MODULE} is not: "
                    "name the PKCS#11 module or unset the other ESIGN_PKCS11_* variables."
                )
            return None
        if not Path(module).is_file():
            raise PKIError(f"{ENV_MODULE} names {module}, which is not a file.")
        token_label = value(ENV_TOKEN)
        if token_label is None:
            raise PKIError(f"{ENV_MODULE} is set but {ENV_TOKEN} (the token label) is not.")
        # The PIN is taken as it is (only a trailing newline of a file is dropped):
        # spaces may be part of it.
        pin = environ.get(ENV_PIN) or None
        pin_file = value(ENV_PIN_FILE)
        if pin is not None and pin_file is not None:
            raise PKIError(f"Set either {ENV_PIN} or {ENV_PIN_FILE}, not both.")
        if pin_file is not None:
            try:
                pin = Path(pin_file).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise PKIError(
                    f"The PIN file {pin_file} ({ENV_PIN_FILE}) cannot be read: {type(exc).__name__}."
                ) from None
            if not pin:
                raise PKIError(f"The PIN file {pin_file} ({ENV_PIN_FILE}) is empty.")
        if not pin:
            raise PKIError(f"{ENV_MODULE} is set but neither {ENV_PIN} nor {ENV_PIN_FILE} is.")
        ca_key_label = value(ENV_CA_KEY_LABEL)
        tsa_key_label = value(ENV_TSA_KEY_LABEL)
        if ca_key_label is None and tsa_key_label is None:
            raise PKIError(
                f"{ENV_MODULE} is set but names no key: set {ENV_CA_KEY_LABEL} and/or {ENV_TSA_KEY_LABEL}."
            )
        return cls(
            module=module,
            token_label=token_label,
            pin=pin,
            ca_key_label=ca_key_label,
            tsa_key_label=tsa_key_label,
        )


# -- modules and tokens, one state per process ----------------------------------

_registry_lock = threading.Lock()
_module_locks: dict[str, threading.RLock] = {}
_tokens: dict[tuple[str, str], _Token] = {}


def _library(module: str) -> Any:
    """The loaded and initialised module (python-pkcs11 keeps one per path). Hold its lock."""
    try:
        library = load_pkcs11_library(module)
        if not library.initialized:
            library.initialize()
    except p11_errors.PKCS11Error as exc:
        raise PKIError(f"The PKCS#11 module {module} cannot be loaded: {exc}") from exc
    return library


def _token(module: str, token_label: str) -> _Token:
    with _registry_lock:
        token = _tokens.get((module, token_label))
        if token is None:
            lock = _module_locks.setdefault(module, threading.RLock())
            token = _tokens[module, token_label] = _Token(module, token_label, lock=lock)
        return token


def _pin_digest(pin: str) -> bytes:
    return hashlib.sha256(pin.encode("utf-8")).digest()


class _Token:
    """The one logged-in session of this process on one token, shared by its keys."""

    def __init__(self, module: str, token_label: str, *, lock: threading.RLock) -> None:
        self.module = module
        self.token_label = token_label
        #: Shared by all tokens of one module: the module may not be called from two threads at once.
        self.lock = lock
        self._library: Any = None
        self._session: Any = None
        self._pin_digest = b""

    @property
    def name(self) -> str:
        return f"PKCS#11 token '{self.token_label}'"

    def run(self, pin: str, operation: Callable[[Any], _T]) -> _T:
        """Run ``operation(session)`` logged in with ``pin``, reconnecting once if the session died.

        :raises PKIError: for a missing token, a wrong PIN, or a failure of the token.
        """
        with self.lock:
            for attempt in (1, 2):
                session = self._session_for(pin)
                try:
                    return operation(session)
                except PKIError:
                    raise
                except p11_errors.PKCS11Error as exc:
                    handle_dead = isinstance(exc, _HANDLE_DEAD) or not self._library.initialized
                    self._drop(close=not handle_dead)
                    if attempt == 2 or not (handle_dead or isinstance(exc, _SESSION_LOST)):
                        raise PKIError(f"The {self.name} failed: {_describe(exc)}.") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _session_for(self, pin: str) -> Any:
        digest = _pin_digest(pin)
        if self._session is not None:
            if hmac.compare_digest(digest, self._pin_digest):
                return self._session
            # Another configuration with another PIN: log out and let the token judge
            # this PIN, so a wrong one is refused even while a right one is logged in.
            self._drop(close=True)
        self._library = _library(self.module)
        try:
            token = self._library.get_token(token_label=self.token_label)
        except p11_errors.NoSuchToken:
            raise PKIError(f"There is no {self.name} in the PKCS#11 module {self.module}.") from None
        except p11_errors.MultipleTokensReturned:
            raise PKIError(f"There are several tokens labelled '{self.token_label}'.") from None
        except p11_errors.PKCS11Error as exc:
            raise PKIError(f"The {self.name} cannot be reached: {_describe(exc)}.") from exc
        try:
            session = token.open(rw=True, user_pin=pin)
        except p11_errors.PinIncorrect:
            raise PKIError(f"The PIN of the {self.name} is wrong.") from None
        except p11_errors.PinLocked:
            raise PKIError(f"The user PIN of the {self.name} is locked; its SO must unlock it.") from None
        except (p11_errors.PinInvalid, p11_errors.PinLenRange):
            raise PKIError(f"The PIN of the {self.name} has a form the token does not accept.") from None
        except p11_errors.UserAlreadyLoggedIn:
            # Some other code of this process (pyHanko's own PKCS#11 signer, a script) holds
            # a logged-in session on the same token; a session of ours shares that login.
            # (python-pkcs11 leaves the session it opened for the refused login behind.)
            session = token.open(rw=True)
        except p11_errors.PKCS11Error as exc:
            raise PKIError(f"The {self.name} refused the session: {_describe(exc)}.") from exc
        self._session, self._pin_digest = session, digest
        return session

    def _drop(self, *, close: bool) -> None:
        session, self._session, self._pin_digest = self._session, None, b""
        if session is not None and close:
            # Closing also logs the token out (for every session of this process): what a
            # PIN change wants, and harmless when the session is being replaced anyway.
            with contextlib.suppress(p11_errors.PKCS11Error):
                session.close()


def _describe(exc: p11_errors.PKCS11Error) -> str:
    # python-pkcs11 carries the meaning in the class name; messages are mostly empty.
    # Neither ever contains the PIN.
    detail = str(exc).strip()
    return f"{type(exc).__name__} ({detail})" if detail else type(exc).__name__


# -- keys ---------------------------------------------------------------------------


def _ec_public_key(ec_params: bytes, ec_point: bytes) -> ec.EllipticCurvePublicKey:
    # CKA_EC_POINT is a DER OCTET STRING by the standard; some modules give the bare point.
    point = ec_point
    if ec_point[:1] == b"\x04":
        with contextlib.suppress(ValueError, TypeError):
            wrapped = asn1_core.OctetString.load(ec_point, strict=True).native
            if wrapped[:1] in (b"\x02", b"\x03", b"\x04"):
                point = wrapped
    info = asn1_keys.PublicKeyInfo(
        {
            "algorithm": {"algorithm": "ec", "parameters": asn1_keys.ECDomainParameters.load(ec_params)},
            "public_key": point,
        }
    )
    key = serialization.load_der_public_key(info.dump())
    if not isinstance(key, ec.EllipticCurvePublicKey):  # pragma: no cover - asn1 says "ec"
        raise ValueError("not an EC key")
    return key


def _read_public_key(session: Any, label: str, key_type: KeyType) -> CertificatePublicKeyTypes:
    """The public half: the token's public key object, else a certificate object, of that label."""
    try:
        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
    except p11_errors.NoSuchKey:
        public = None
    if public is not None:
        if key_type == KeyType.EC:
            return _ec_public_key(public[Attribute.EC_PARAMS], public[Attribute.EC_POINT])
        return rsa.RSAPublicNumbers(
            int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(public[Attribute.MODULUS], "big"),
        ).public_key()
    # An HSM key imported with its certificate (pkcs11-tool --write-object) may have no
    # public key object; the certificate of the same label names the public key as well.
    certificates = list(
        session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: label})
    )
    if certificates:
        return x509.load_der_x509_certificate(certificates[0][Attribute.VALUE]).public_key()
    raise PKIError(f"The key '{label}' has no public key or certificate object in the token.")


class Pkcs11Key:
    """A private key inside a PKCS#11 token, as a :class:`.keys.SigningKey`.

    Made by :func:`open_token_key` or :func:`generate_token_key`. Safe to share between
    threads; all keys of a token share one logged-in session.

    EC keys sign a SHA-256 digest with raw ``CKM_ECDSA`` (SoftHSM2 2.6 and several HSMs
    lack ``CKM_ECDSA_SHA256``) and the token's r‖s is wrapped as a DER ECDSA-Sig-Value;
    RSA keys sign with ``CKM_SHA256_RSA_PKCS``.
    """

    def __init__(
        self, config: Pkcs11Config, key_label: str, *, public_key: CertificatePublicKeyTypes
    ) -> None:
        self._config = config
        self._key_label = key_label
        self._public_key = public_key
        self._kind: KeyKind = key_kind(public_key)
        self._token = _token(config.module, config.token_label)
        self._private: Any = None
        self._private_session: Any = None

    def __repr__(self) -> str:
        return f"<Pkcs11Key {self.label}>"

    @property
    def public_key(self) -> CertificatePublicKeyTypes:
        """The public half, as read from the token."""
        return self._public_key

    @property
    def label(self) -> str:
        """E.g. ``PKCS#11 token 'esign' key 'issuing-ca'``."""
        return f"PKCS#11 token '{self._config.token_label}' key '{self._key_label}'"

    @property
    def key_label(self) -> str:
        """The key's label inside the token (``CKA_LABEL``)."""
        return self._key_label

    @property
    def config(self) -> Pkcs11Config:
        """The configuration the key was opened with."""
        return self._config

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with SHA-256 in the token.

        :param data: the bytes to sign (a TBSCertificate, a TBSCertList, signed attributes...).
        :returns: a DER ECDSA-Sig-Value (EC) or a PKCS#1 v1.5 signature (RSA).
        :raises PKIError: when the token cannot be reached, the PIN is wrong, the key is
            gone or the token refuses to sign.
        """
        if self._kind == "ec":
            digest = hashlib.sha256(data).digest()
            raw = self._token.run(
                self._config.pin, lambda session: self._sign(session, digest, Mechanism.ECDSA)
            )
            if not raw or len(raw) % 2:
                raise PKIError(f"{self.label} returned a malformed ECDSA signature.")
            half = len(raw) // 2
            return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
        return self._token.run(
            self._config.pin, lambda session: self._sign(session, data, Mechanism.SHA256_RSA_PKCS)
        )

    def _sign(self, session: Any, data: bytes, mechanism: Mechanism) -> bytes:
        if self._private_session is not session:
            # Object handles are only good for the session that found them.
            self._private = _find_private_key(session, self._key_label)
            self._private_session = session
        return bytes(self._private.sign(data, mechanism=mechanism))


def _find_private_key(session: Any, label: str) -> Any:
    try:
        return session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
    except p11_errors.NoSuchKey:
        raise PKIError(f"The token has no private key labelled '{label}'.") from None
    except p11_errors.MultipleObjectsReturned:
        raise PKIError(f"The token has several private keys labelled '{label}'.") from None


def _public_key_of(session: Any, label: str) -> CertificatePublicKeyTypes:
    private = _find_private_key(session, label)
    key_type = private[Attribute.KEY_TYPE]
    if key_type not in (KeyType.EC, KeyType.RSA):
        raise PKIError(f"The key '{label}' is neither EC nor RSA.")
    if not private[Attribute.SIGN]:
        raise PKIError(f"The key '{label}' is not allowed to sign (CKA_SIGN is false).")
    with contextlib.suppress(p11_errors.AttributeTypeInvalid):
        if private[Attribute.ALWAYS_AUTHENTICATE]:
            # A PIN entry before every signature suits a person's card, not a CA serving a site.
            raise PKIError(f"The key '{label}' wants the PIN for every signature (CKA_ALWAYS_AUTHENTICATE).")
    try:
        return _read_public_key(session, label, key_type)
    except (ValueError, TypeError) as exc:
        raise PKIError(f"The public key of '{label}' in the token cannot be read: {exc}") from exc


def _check_pair(key: Pkcs11Key) -> None:
    """Sign a test message and verify it: the public object must belong to the private key."""
    message = b"esign.plone key check " + os.urandom(16)
    signature = key.sign(message)
    public = key.public_key
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise PKIError(
            f"{key.label}: the public key in the token does not belong to the private key."
        ) from None


def open_token_key(config: Pkcs11Config, label: str) -> Pkcs11Key:
    """Open an existing key in the token for signing.

    Logs in (once per token and process), finds the private key and its public key
    object (or a certificate object) of the same label, and makes one test signature
    to prove the two belong together.

    Example::

        config = Pkcs11Config.from_environ(os.environ)
        issuing_key = open_token_key(config, config.ca_key_label)
        certificate = keys.sign_certificate(builder, issuing_key)

    :param config: the token and PIN.
    :param label: the key's ``CKA_LABEL``.
    :returns: the key.
    :raises PKIError: for a module that does not load, a missing token, a wrong PIN, a
        missing or ambiguous key, a key that may not sign, or a public key that does not match.
    """
    token = _token(config.module, config.token_label)
    public_key = token.run(config.pin, lambda session: _public_key_of(session, label))
    key = Pkcs11Key(config, label, public_key=public_key)
    _check_pair(key)
    return key


def generate_token_key(config: Pkcs11Config, label: str, *, kind: Literal["ec", "rsa"] = "ec") -> Pkcs11Key:
    """Make a new key pair inside the token.

    The private key is a token object, private, sensitive, never extractable and allowed
    to sign only (no decrypt, unwrap or derive); the public key may only verify. Both get
    ``label`` and, as ``CKA_ID``, the key identifier of the public key (SHA-1 of the key,
    RFC 5280 method 1) so tools such as ``pkcs11-tool --id`` find the matching certificate.

    :param config: the token and PIN.
    :param label: the new key's ``CKA_LABEL``.
    :param kind: ``"ec"`` (P-256) or ``"rsa"`` (3072 bits).
    :returns: the new key.
    :raises PKIError: when the token already holds an object with that label (nothing is
        overwritten), or the token cannot make the key.
    """
    if kind not in ("ec", "rsa"):
        raise PKIError(f"Unknown key kind {kind!r}: use 'ec' or 'rsa'.")
    if not label:
        raise PKIError("A key in a token needs a label.")
    private_template = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
    }
    public_template = {Attribute.TOKEN: True, Attribute.PRIVATE: False}
    capabilities = MechanismFlag.SIGN | MechanismFlag.VERIFY

    def generate(session: Any) -> CertificatePublicKeyTypes:
        if list(session.get_objects({Attribute.LABEL: label})):
            raise PKIError(
                f"The PKCS#11 token '{config.token_label}' already holds an object labelled "
                f"'{label}'; refusing to overwrite it."
            )
        if kind == "ec":
            parameters = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True
            )
            public, private = parameters.generate_keypair(
                label=label,
                store=True,
                capabilities=capabilities,
                public_template=public_template,
                private_template=private_template,
            )
        else:
            public, private = session.generate_keypair(
                KeyType.RSA,
                RSA_KEY_BITS,
                label=label,
                store=True,
                capabilities=capabilities,
                public_template=public_template,
                private_template=private_template,
            )
        public_key = _read_public_key(session, label, KeyType.EC if kind == "ec" else KeyType.RSA)
        key_id = x509.SubjectKeyIdentifier.from_public_key(public_key).digest
        public[Attribute.ID] = key_id
        private[Attribute.ID] = key_id
        return public_key

    token = _token(config.module, config.token_label)
    public_key = token.run(config.pin, generate)
    return Pkcs11Key(config, label, public_key=public_key)
