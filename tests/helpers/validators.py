"""Independent validators: poppler's ``pdfsig`` (NSS) and ``qpdf --check``."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def _intermediate_cas(path: Path, root_pem: bytes) -> list[bytes]:
    """PEM of the CA certificates (not the root) embedded in the PDF's signatures."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    root = x509.load_pem_x509_certificate(root_pem)
    found: dict[bytes, bytes] = {}
    try:
        with open(path, "rb") as handle:
            for signature in PdfFileReader(handle, strict=False).embedded_signatures:
                for certificate in signature.other_embedded_certs:
                    candidate = x509.load_der_x509_certificate(certificate.dump())
                    try:
                        is_ca = candidate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
                    except x509.ExtensionNotFound:
                        is_ca = False
                    if is_ca and candidate != root:
                        found[candidate.fingerprint(candidate.signature_hash_algorithm)] = (
                            candidate.public_bytes(serialization.Encoding.PEM)
                        )
    except Exception:  # a damaged file: pdfsig will say so itself
        return []
    return list(found.values())


def _nss_database(directory: Path, root: bytes | x509.Certificate, intermediates: list[bytes] = ()) -> str:
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
    # The issuing CA as a known, untrusted intermediate, as an installation that trusts a
    # PKI has it. Without it, NSS (poppler 22.12) forgets the CA certificate it took from
    # the first signature and cannot check the OCSP answer for the second one ("Unknown
    # issue with Certificate or corrupted data.").
    for number, pem in enumerate(intermediates):
        (directory / f"ca{number}.pem").write_bytes(pem)
        subprocess.run(
            [
                "certutil",
                "-A",
                "-n",
                f"ca{number}",
                "-t",
                ",,",
                "-i",
                str(directory / f"ca{number}.pem"),
                "-d",
                f"sql:{directory}",
            ],
            check=True,
            capture_output=True,
        )
    return f"sql:{directory}"


def pdfsig(
    path: Path | str, trust_root: bytes | x509.Certificate, *, timestamps: bool = False
) -> list[dict[str, str | bool]]:
    """Run ``pdfsig`` with a throwaway NSS database that trusts ``trust_root``.

    Notes for poppler 22.12: the NSS directory must be an absolute ``sql:`` path (a
    relative one is silently not used), and ``-no-ocsp`` turns every certificate check
    into "Unknown issue with Certificate or corrupted data.", so it is not passed. The
    site CA's certificates name its OCSP responder, which pdfsig asks over HTTP: the
    site must be served (functional layer) and the signature committed, or the answer
    is "unknown" and pdfsig reports "Unknown issue…". pdfsig checks certificates at the
    current time: a one-time certificate reads as expired once its minutes have passed.
    Document timestamps (B-LTA) are left out: poppler 22.12 does not verify them
    ("Signature has not yet been verified.", type unknown); pass ``timestamps=True``
    to get them too.

    :param path: the PDF.
    :param trust_root: PEM bytes or a certificate to trust.
    :returns: per signature, in file order: ``field``, ``signer``, ``dn``, ``signature``
        ("Signature is Valid." …), ``certificate`` ("Certificate is Trusted." …), ``type``,
        ``ranges`` and ``total`` (``True`` for "Total document signed").
    """
    root_pem = (
        trust_root.public_bytes(serialization.Encoding.PEM)
        if isinstance(trust_root, x509.Certificate)
        else trust_root
    )
    with tempfile.TemporaryDirectory(prefix="nss-") as nss:
        nss_dir = _nss_database(Path(nss).resolve(), trust_root, _intermediate_cas(Path(path), root_pem))
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
    if not timestamps:
        # pyHanko names document-timestamp fields "Timestamp-<uuid>"; poppler cannot read their type.
        signatures = [
            s
            for s in signatures
            if not (str(s.get("field", "")).startswith("Timestamp-") and s.get("type") == "unknown")
        ]
    return signatures


def pdfsig_output(path: Path | str, trust_root: bytes | x509.Certificate) -> str:
    """The raw text pdfsig prints (for reports and failure messages)."""
    root_pem = (
        trust_root.public_bytes(serialization.Encoding.PEM)
        if isinstance(trust_root, x509.Certificate)
        else trust_root
    )
    with tempfile.TemporaryDirectory(prefix="nss-") as nss:
        nss_dir = _nss_database(Path(nss).resolve(), trust_root, _intermediate_cas(Path(path), root_pem))
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
