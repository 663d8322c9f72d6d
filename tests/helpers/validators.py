"""Independent validators: poppler's ``pdfsig`` (NSS) and ``qpdf --check``."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def _nss_database(directory: Path, root: bytes | x509.Certificate) -> str:
    pem = root.public_bytes(serialization.Encoding.PEM) if isinstance(root, x509.Certificate) else root
    (directory / "root.pem").write_bytes(pem)
    subprocess.run(
        ["certutil", "-N", "--empty-password", "-d", f"sql:{directory}"], check=True, capture_output=True
    )
    subprocess.run(
        [
            "certutil",
            "-A",
            "-n",
            "root",
            "-t",
            "CT,C,C",
            "-i",
            str(directory / "root.pem"),
            "-d",
            f"sql:{directory}",
        ],
        check=True,
        capture_output=True,
    )
    return f"sql:{directory}"


def pdfsig(path: Path | str, trust_root: bytes | x509.Certificate) -> list[dict[str, str | bool]]:
    """Run ``pdfsig`` with a throwaway NSS database that trusts ``trust_root``.

    Notes for poppler 22.12: the NSS directory must be an absolute ``sql:`` path (a
    relative one is silently not used), and ``-no-ocsp`` turns every certificate check
    into "Unknown issue with Certificate or corrupted data.", so it is not passed; our
    certificates name no OCSP responder, so nothing is fetched anyway. pdfsig checks
    certificates at the current time: a one-time certificate reads as expired once its
    minutes have passed.

    :param path: the PDF.
    :param trust_root: PEM bytes or a certificate to trust.
    :returns: per signature, in file order: ``field``, ``signer``, ``dn``, ``signature``
        ("Signature is Valid." …), ``certificate`` ("Certificate is Trusted." …), ``type``,
        ``ranges`` and ``total`` (``True`` for "Total document signed").
    """
    with tempfile.TemporaryDirectory(prefix="nss-") as nss:
        nss_dir = _nss_database(Path(nss).resolve(), trust_root)
        completed = subprocess.run(
            ["pdfsig", "-nssdir", nss_dir, str(Path(path).resolve())],
            capture_output=True,
            text=True,
            timeout=60,
        )
    keys = {
        "Signature Field Name": "field",
        "Signer Certificate Common Name": "signer",
        "Signer full Distinguished Name": "dn",
        "Signature Validation": "signature",
        "Certificate Validation": "certificate",
        "Signature Type": "type",
        "Signed Ranges": "ranges",
        "Signing Time": "time",
    }
    signatures: list[dict[str, str | bool]] = []
    for line in completed.stdout.splitlines():
        if re.match(r"Signature #\d+:", line):
            signatures.append({"total": False})
            continue
        item = re.match(r"\s+- (.*)$", line)
        if not item or not signatures:
            continue
        text = item.group(1)
        if text == "Total document signed":
            signatures[-1]["total"] = True
        elif ": " in text:
            key, value = text.split(": ", 1)
            if key in keys:
                signatures[-1][keys[key]] = value.strip()
    return signatures


def pdfsig_output(path: Path | str, trust_root: bytes | x509.Certificate) -> str:
    """The raw text pdfsig prints (for reports and failure messages)."""
    with tempfile.TemporaryDirectory(prefix="nss-") as nss:
        nss_dir = _nss_database(Path(nss).resolve(), trust_root)
        return subprocess.run(
            ["pdfsig", "-nssdir", nss_dir, str(Path(path).resolve())],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout


def qpdf_check(path: Path | str) -> tuple[bool, str]:
    """Run ``qpdf --check``.

    :returns: ``(ok, output)``; ``ok`` is ``True`` for exit status 0 (no errors or warnings).
    """
    completed = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True, timeout=120)
    return completed.returncode == 0, completed.stdout + completed.stderr
