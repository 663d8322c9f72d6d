"""A throwaway SoftHSM2 token for tests of keys held in PKCS#11.

SoftHSM2 reads ``SOFTHSM2_CONF`` and scans its token folder once, when the module is
initialised, and python-pkcs11 initialises a module once per process. So the folder
is made once per process, and every token a test session wants is made before the
first key is opened (:func:`softhsm_token` with a new label after that fails loudly).

Usage in a conftest or test module::

    from helpers.softhsm import softhsm_token

    @pytest.fixture(scope="session")
    def token():
        return softhsm_token()

    def test_...(token):
        key = generate_token_key(token.config, "issuing-ca")
        subprocess.run([...], env={**os.environ, **token.environ})
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from esign.plone.signing.pkcs11 import Pkcs11Config

#: Debian's softhsm2 package.
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "esign"
USER_PIN = "314159"
SO_PIN = "27182818"

_lock = threading.Lock()
_tokens: dict[str, SoftHSMToken] = {}


@dataclass(frozen=True)
class SoftHSMToken:
    """An initialised SoftHSM2 token and what a process needs to use it."""

    #: Module, token label and PIN (no key labels; tests pick their own).
    config: Pkcs11Config
    #: The SoftHSM2 configuration file.
    conf_path: Path
    #: Variables a subprocess (softhsm2-util, pkcs11-tool, openssl) needs to see the token.
    environ: dict[str, str]
    so_pin: str


@functools.cache
def _softhsm_directory() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="softhsm-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    return directory


def _module_loaded() -> bool:
    import pkcs11

    # python-pkcs11 keeps the modules it loaded by path; nothing public tells.
    return SOFTHSM_MODULE in pkcs11._loaded


def softhsm_token(label: str = TOKEN_LABEL, *, pin: str = USER_PIN, so_pin: str = SO_PIN) -> SoftHSMToken:
    """The token ``label`` in this process's SoftHSM2 folder, made on first use.

    Sets ``SOFTHSM2_CONF`` in ``os.environ`` (the module reads it in this process).

    :raises RuntimeError: when a new token is asked for after the module was initialised
        (SoftHSM2 would not see it), or ``softhsm2-util`` fails.
    """
    with _lock:
        if label in _tokens:
            return _tokens[label]
        directory = _softhsm_directory()
        conf = directory / "softhsm2.conf"
        if _module_loaded():
            raise RuntimeError(
                f"Make token {label!r} before the first key is opened: SoftHSM2 reads its"
                " configuration and scans its tokens once per process."
            )
        os.environ["SOFTHSM2_CONF"] = str(conf)
        environ = {"SOFTHSM2_CONF": str(conf)}
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
            check=True,
            capture_output=True,
            env={**os.environ, **environ},
            timeout=60,
        )
        token = SoftHSMToken(
            config=Pkcs11Config(module=SOFTHSM_MODULE, token_label=label, pin=pin),
            conf_path=conf,
            environ=environ,
            so_pin=so_pin,
        )
        _tokens[label] = token
        return token


@pytest.fixture(scope="session")
def softhsm() -> SoftHSMToken:
    """The session's SoftHSM2 token ``esign`` (user PIN :data:`USER_PIN`)."""
    return softhsm_token()
