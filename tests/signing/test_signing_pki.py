"""The site PKI: created once, stored encrypted, loaded back, or imported from PKCS#12."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from esign.plone.errors import PKIError
from esign.plone.signing import SitePKI, sign_pdf_bytes, validate_pdf
from helpers.people import ORGANISATION, PASSPHRASE


def test_a_created_pki_loads_back_with_its_passphrase(pki_dir: Path, pki: SitePKI) -> None:
    again = SitePKI.load(pki_dir, passphrase=PASSPHRASE)
    assert SitePKI.exists(pki_dir)
    assert again.root_certificate == pki.root_certificate
    assert again.issuing_certificate == pki.issuing_certificate
    assert (
        again.root_certificate.subject.rfc4514_string() == f"CN={ORGANISATION} Root CA,O={ORGANISATION},C=SE"
    )
    assert again.issuing_certificate.subject.rfc4514_string() == (
        f"CN={ORGANISATION} Signing CA,O={ORGANISATION},C=SE"
    )


def test_a_wrong_passphrase_is_refused_with_a_pki_error(pki_dir: Path) -> None:
    with pytest.raises(PKIError, match="passphrase"):
        SitePKI.load(pki_dir, passphrase=b"wrong")


def test_a_missing_pki_is_reported_with_a_pki_error(tmp_path: Path) -> None:
    assert not SitePKI.exists(tmp_path)
    with pytest.raises(PKIError, match="No site PKI"):
        SitePKI.load(tmp_path, passphrase=PASSPHRASE)


def test_an_existing_pki_is_never_overwritten(pki_dir: Path) -> None:
    with pytest.raises(PKIError, match="already exists"):
        SitePKI.create(pki_dir, passphrase=PASSPHRASE, organisation="Other")


def test_key_files_are_readable_by_the_owner_only_and_encrypted(pki_dir: Path) -> None:
    assert stat.S_IMODE(pki_dir.stat().st_mode) == 0o700
    for name in ("issuing-key.pem", "root-key.pem"):
        key_file = pki_dir / name
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        content = key_file.read_bytes()
        assert content.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert b"BEGIN PRIVATE KEY" not in content
    assert sorted(p.name for p in pki_dir.iterdir()) == [
        "issuing-key.pem",
        "issuing.pem",
        "root-key.pem",
        "root.pem",
    ]


def test_the_ca_certificates_form_a_chain_that_may_only_issue_signature_certificates(pki: SitePKI) -> None:
    root, issuing = pki.root_certificate, pki.issuing_certificate
    issuing.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    for certificate, path_length in ((root, 1), (issuing, 0)):
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca and constraints.value.path_length == path_length
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    aki = issuing.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert aki == ski
    years = (root.not_valid_after_utc - root.not_valid_before_utc).days / 365.25
    # Longer than documents are kept: an expired CA in the chain is a failure no archive
    # timestamp repairs in pyHanko's AdES validation.
    assert round(years) == 30
    assert round((issuing.not_valid_after_utc - issuing.not_valid_before_utc).days / 365.25) == 20
    assert pki.chain == (issuing, root)


def test_the_control_panel_shows_sha256_fingerprints_and_offers_the_root_for_download(pki: SitePKI) -> None:
    prints = pki.fingerprints()
    assert prints["root"] == pki.root_certificate.fingerprint(hashes.SHA256()).hex(":").upper()
    assert len(prints["issuing"].split(":")) == 32
    assert x509.load_pem_x509_certificate(pki.root_pem()) == pki.root_certificate


def _pkcs12(pki_dir: Path, pki: SitePKI, *, password: bytes | None) -> bytes:
    key = serialization.load_pem_private_key((pki_dir / "issuing-key.pem").read_bytes(), PASSPHRASE)
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return pkcs12.serialize_key_and_certificates(
        b"signing ca", key, pki.issuing_certificate, [pki.root_certificate], encryption
    )


def test_an_issuing_ca_imported_from_pkcs12_signs_documents_trusted_under_its_root(
    tmp_path: Path, pki_dir: Path, pki: SitePKI, documents, tolvan
) -> None:
    data = _pkcs12(pki_dir, pki, password=b"p12-secret")
    imported = SitePKI.import_pkcs12(
        tmp_path / "pki", data, password=b"p12-secret", passphrase=b"new passphrase"
    )
    assert imported.root_certificate == pki.root_certificate
    assert not (tmp_path / "pki" / "root-key.pem").exists()
    loaded = SitePKI.load(tmp_path / "pki", passphrase=b"new passphrase")
    signed, _ = sign_pdf_bytes(documents.data("reportlab"), identity=tolvan, pki=loaded)
    (report,) = validate_pdf(signed, trust_roots=[pki.root_certificate]).signatures
    assert report.trusted and report.bottom_line


def test_a_self_signed_issuing_ca_is_its_own_root(tmp_path: Path) -> None:
    own = SitePKI.create(tmp_path / "src", passphrase=PASSPHRASE, organisation="Self")
    root_key = serialization.load_pem_private_key(
        (tmp_path / "src" / "root-key.pem").read_bytes(), PASSPHRASE
    )
    data = pkcs12.serialize_key_and_certificates(
        None, root_key, own.root_certificate, None, serialization.NoEncryption()
    )
    imported = SitePKI.import_pkcs12(tmp_path / "pki", data, password=None, passphrase=PASSPHRASE)
    assert imported.root_certificate == imported.issuing_certificate == own.root_certificate


def test_importing_pkcs12_with_a_wrong_password_or_a_chain_gap_is_refused(
    tmp_path: Path, pki_dir: Path, pki: SitePKI
) -> None:
    data = _pkcs12(pki_dir, pki, password=b"p12-secret")
    with pytest.raises(PKIError, match="wrong password"):
        SitePKI.import_pkcs12(tmp_path / "a", data, password=b"nope", passphrase=PASSPHRASE)
    key = serialization.load_pem_private_key((pki_dir / "issuing-key.pem").read_bytes(), PASSPHRASE)
    no_root = pkcs12.serialize_key_and_certificates(
        None, key, pki.issuing_certificate, None, serialization.NoEncryption()
    )
    with pytest.raises(PKIError, match="chain up to a root"):
        SitePKI.import_pkcs12(tmp_path / "b", no_root, password=None, passphrase=PASSPHRASE)
    assert not SitePKI.exists(tmp_path / "a") and not SitePKI.exists(tmp_path / "b")


def test_a_signer_certificate_cannot_be_imported_as_a_ca(tmp_path: Path, pki: SitePKI, tolvan) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = pki.issue_one_time_certificate(tolvan, key.public_key(), validity=dt.timedelta(days=1))
    data = pkcs12.serialize_key_and_certificates(
        None, key, leaf, [pki.issuing_certificate, pki.root_certificate], serialization.NoEncryption()
    )
    with pytest.raises(PKIError, match="not a CA"):
        SitePKI.import_pkcs12(tmp_path / "pki", data, password=None, passphrase=PASSPHRASE)
