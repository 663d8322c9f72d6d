"""Where this site's PKI lives and how it is opened.

The CA private keys are never stored in the ZODB. The embedded default keeps
them as passphrase-encrypted PKCS#8 files under the instance's ``var/``
(``ESIGN_PKI_DIR`` overrides the base folder); the passphrase comes from
``ESIGN_CA_PASSPHRASE`` or, failing that, from a generated file beside them.
With ``ESIGN_PKCS11_MODULE`` and friends the issuing CA key and the TSA key live
in a PKCS#11 token instead (see :mod:`esign.plone.signing.pkcs11`).

What the PKI issues is recorded in the ZODB (:mod:`esign.plone.pkiregistry`), so
the OCSP responder and the CRLs answer for every certificate, one-time ones included.
"""

from __future__ import annotations

import functools
import os
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from plone import api

from esign.plone import logger
from esign.plone.errors import InvalidInput, PKIError
from esign.plone.signing import SitePKI
from esign.plone.signing.values import PublicationPoints

if TYPE_CHECKING:
    from cryptography import x509

_cache: dict[Path, tuple[tuple[float, ...], SitePKI]] = {}
_lock = threading.Lock()


def pki_base_directory() -> Path:
    env = os.environ.get("ESIGN_PKI_DIR")
    if env:
        return Path(env)
    from App.config import getConfiguration

    clienthome = getattr(getConfiguration(), "clienthome", None)
    if not clienthome:
        raise PKIError(
            "Ingen plats för webbplatsens PKI: sätt ESIGN_PKI_DIR eller kör i en Zope-instans med var/."
        )
    return Path(clienthome) / "esign-pki"


def pki_directory() -> Path:
    pki_id = api.portal.get_registry_record("esign.internal.pki_id", default=None)
    if not pki_id:
        raise PKIError("esign.plone är inte installerat på webbplatsen (PKI saknas).")
    return pki_base_directory() / pki_id


def _passphrase(directory: Path) -> bytes:
    env = os.environ.get("ESIGN_CA_PASSPHRASE")
    if env:
        return env.encode()
    path = directory.parent / f"{directory.name}.passphrase"
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text().strip().encode()


def hsm_config():
    """The PKCS#11 token configured in the environment (``ESIGN_PKCS11_*``), or ``None``."""
    if not any(name.startswith("ESIGN_PKCS11_") for name in os.environ):
        return None
    from esign.plone.signing.pkcs11 import Pkcs11Config

    return Pkcs11Config.from_environ(os.environ)


def site_url() -> str:
    """The site's public address: the control panel's ``public_url`` or the portal URL."""
    configured = (api.portal.get_registry_record("esign.public_url", default="") or "").strip()
    return configured.rstrip("/") if configured else api.portal.get().absolute_url()


def publication_points() -> PublicationPoints:
    """Where this site publishes its OCSP responder, CRLs and CA certificates."""
    return PublicationPoints.under(site_url())


def _loaded_pki() -> SitePKI:
    directory = pki_directory()
    try:
        marker = tuple(
            (directory / name).stat().st_mtime if (directory / name).exists() else 0.0
            for name in ("issuing.pem", "tsa.pem")
        )
        if not marker[0]:
            raise FileNotFoundError
    except FileNotFoundError:
        raise PKIError(
            "Webbplatsens certifikatutfärdare saknas. Skapa eller importera den i inställningarna "
            "för E-underskrift."
        ) from None
    with _lock:
        cached = _cache.get(directory)
        if cached and cached[0] == marker:
            return cached[1]
        pki = SitePKI.load(directory, passphrase=_passphrase(directory), hsm=hsm_config())
        _cache[directory] = (marker, pki)
        return pki


def site_pki() -> SitePKI:
    """The site's PKI, bound to this site's registry of issued certificates and addresses.

    The keys are loaded once per process and reloaded when the certificate files
    change. Caching them in process memory is safe for scale-out: every instance
    loads the same files (or the same token); the registry is in the database.
    """
    from esign.plone.pkiregistry import SiteCertificateRegistry

    return _loaded_pki().bound(registry=SiteCertificateRegistry(), publication=publication_points())


def _forget() -> None:
    with _lock:
        _cache.clear()


def ensure_site_pki(*, organisation: str) -> SitePKI:
    """Create the root and issuing CA (and the TSA) on install, unless this site has them already."""
    directory = pki_directory()
    if not SitePKI.exists(directory):
        logger.info("Creating the site PKI in %s", directory)
        hsm = hsm_config()
        issuing_key = None
        if hsm is not None and hsm.ca_key_label:
            from esign.plone.signing.pkcs11 import generate_token_key

            issuing_key = generate_token_key(hsm, hsm.ca_key_label)
        SitePKI.create(
            directory,
            passphrase=_passphrase(directory),
            organisation=organisation,
            issuing_key=issuing_key,
            publication=publication_points(),
        )
        _forget()
    return ensure_tsa()


def ensure_tsa(*, now=None, force: bool = False) -> SitePKI:
    """Give the site TSA a certificate when it has none or when it expires within the renewal margin.

    A new certificate is issued in time, so document timestamps made from then on
    outlive their renewal date; the old certificate stays valid for what it stamped.
    """
    import datetime as dt

    pki = site_pki()
    now = now or dt.datetime.now(dt.UTC)
    margin = dt.timedelta(
        days=api.portal.get_registry_record("esign.archive_renewal_days", default=365) or 365
    )
    current = pki.tsa_certificate
    if current is not None and not force and current.not_valid_after_utc - margin > now:
        return pki
    years = api.portal.get_registry_record("esign.tsa_certificate_years", default=6) or 6
    hsm = hsm_config()
    key = None
    if hsm is not None and hsm.tsa_key_label:
        from esign.plone.errors import PKIError as _PKIError
        from esign.plone.signing.pkcs11 import generate_token_key, open_token_key

        try:
            key = open_token_key(hsm, hsm.tsa_key_label)
        except _PKIError:
            key = generate_token_key(hsm, hsm.tsa_key_label)
    logger.info("Issuing a certificate for the site TSA (%s years)", years)
    directory = pki_directory()
    pki.issue_tsa(directory, passphrase=_passphrase(directory), years=years, key=key, now=now)
    _forget()
    return site_pki()


def site_timestamper():
    """The RFC 3161 client signatures and document timestamps use.

    An external TSA (``tsa_url``) is called over HTTP. The site's own TSA is called in
    this process — through the same RFC 3161 request/response code as over HTTP — because a
    worker thread that called its own server would wait on a thread of the same pool and,
    under load, deadlock; ``<site>/esign-pki/tsa`` serves that same TSA to everybody else.
    """
    from esign.plone.environment import seconds_from_env
    from esign.plone.signing.ltv import http_timestamper, local_timestamper

    url = (api.portal.get_registry_record("esign.tsa_url", default="") or "").strip()
    if url:
        password = os.environ.get("ESIGN_TSA_PASSWORD") or (
            api.portal.get_registry_record("esign.tsa_password", default="") or ""
        )
        username = api.portal.get_registry_record("esign.tsa_username", default="") or ""
        timeout = seconds_from_env("ESIGN_TSA_TIMEOUT") or 10.0
        return http_timestamper(url, username=username, password=password, timeout=timeout)
    pki = site_pki()
    if pki.tsa_certificate is None:
        pki = ensure_tsa()
    return local_timestamper(pki)


def uses_external_tsa() -> bool:
    return bool((api.portal.get_registry_record("esign.tsa_url", default="") or "").strip())


def tsa_trust_roots() -> tuple[x509.Certificate, ...]:
    """The external TSA's trust anchors: ``ESIGN_TSA_TRUST_ROOTS`` (a PEM file) or the control panel.

    Unreadable ones are logged and left out: signing with that TSA then fails as untrusted,
    and validation goes on against the site root.
    """
    path = os.environ.get("ESIGN_TSA_TRUST_ROOTS")
    try:
        if path:
            return _trust_roots(Path(path).read_bytes())
        pem = (api.portal.get_registry_record("esign.tsa_trust_roots", default="") or "").strip()
        return _trust_roots(pem.encode("utf-8")) if pem else ()
    except (OSError, InvalidInput) as exc:
        logger.error("The external TSA's trust roots (%s) cannot be read: %s", path or "control panel", exc)
        return ()


@functools.lru_cache(maxsize=4)
def _trust_roots(pem: bytes) -> tuple[x509.Certificate, ...]:
    # Asked for at every signature, document timestamp and validation: parsed once per text.
    from esign.plone.signing.ltv import load_trust_roots

    return load_trust_roots(pem)


def import_site_ca(data: bytes, *, password: bytes | None) -> SitePKI:
    """Replace the issuing CA with one from a PKCS#12 file the administrator uploads."""
    directory = pki_directory()
    SitePKI.import_pkcs12(directory, data, password=password, passphrase=_passphrase(directory))
    _forget()
    return ensure_tsa(force=True)
