"""Where this site's PKI lives and how it is opened.

The CA private keys are never stored in the ZODB. The embedded default keeps
them as passphrase-encrypted PKCS#8 files under the instance's ``var/``
(``ESIGN_PKI_DIR`` overrides the base folder); the passphrase comes from
``ESIGN_CA_PASSPHRASE`` or, failing that, from a generated file beside them.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from plone import api

from esign.plone import logger
from esign.plone.errors import PKIError
from esign.plone.signing import SitePKI

_cache: dict[Path, tuple[float, SitePKI]] = {}
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


def site_pki() -> SitePKI:
    """The site's PKI, loaded once per process and reloaded when its files change.

    Caching the decrypted CA key in process memory is safe for scale-out: every
    instance loads the same files; nothing here is state another instance needs.
    """
    directory = pki_directory()
    marker = directory / "issuing.pem"
    try:
        mtime = marker.stat().st_mtime
    except FileNotFoundError:
        raise PKIError(
            "Webbplatsens certifikatutfärdare saknas. Skapa eller importera den i inställningarna "
            "för E-underskrift."
        ) from None
    with _lock:
        cached = _cache.get(directory)
        if cached and cached[0] == mtime:
            return cached[1]
        pki = SitePKI.load(directory, passphrase=_passphrase(directory))
        _cache[directory] = (mtime, pki)
        return pki


def ensure_site_pki(*, organisation: str) -> SitePKI:
    """Create the root and issuing CA on install, unless this site has them already."""
    directory = pki_directory()
    if SitePKI.exists(directory):
        return site_pki()
    logger.info("Creating the site PKI in %s", directory)
    SitePKI.create(directory, passphrase=_passphrase(directory), organisation=organisation)
    return site_pki()


def import_site_ca(data: bytes, *, password: bytes | None) -> SitePKI:
    """Replace the issuing CA with one from a PKCS#12 file the administrator uploads."""
    directory = pki_directory()
    SitePKI.import_pkcs12(directory, data, password=password, passphrase=_passphrase(directory))
    with _lock:
        _cache.pop(directory, None)
    return site_pki()
