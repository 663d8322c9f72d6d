"""The CA and TSA keys in a PKCS#11 token (SoftHSM2): they sign, they never leave the token."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, ObjectClass

from esign.plone.errors import PKIError
from esign.plone.signing import SitePKI, sign_pdf_bytes
from esign.plone.signing.keys import SigningKey, SoftwareKey, sign_certificate, sign_crl
from esign.plone.signing.pkcs11 import Pkcs11Config, Pkcs11Key, generate_token_key, open_token_key
from helpers.people import ORGANISATION, PASSPHRASE
from helpers.softhsm import SoftHSMToken, softhsm_token
from helpers.validators import pdfsig, qpdf_check

WRONG_PIN = "97531864"


@pytest.fixture(scope="session")
def token() -> SoftHSMToken:
    return softhsm_token()


@pytest.fixture(scope="session")
def ec_key(token: SoftHSMToken) -> Pkcs11Key:
    return generate_token_key(token.config, "test-ec-ca")


@pytest.fixture(scope="session")
def rsa_key(token: SoftHSMToken) -> Pkcs11Key:
    return generate_token_key(token.config, "test-rsa-ca", kind="rsa")


@pytest.fixture(params=["ec", "rsa"])
def token_key(request: pytest.FixtureRequest) -> Pkcs11Key:
    return request.getfixturevalue(f"{request.param}_key")


def verify(key: SigningKey, signature: bytes, data: bytes) -> None:
    """Raise InvalidSignature unless ``signature`` is ``key``'s SHA-256 signature of ``data``."""
    public = key.public_key
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    else:
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def ca_certificate(key: SigningKey, common_name: str) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key), critical=False)
    )
    return sign_certificate(builder, key)


def leaf_certificate(issuer: x509.Certificate, issuer_key: SigningKey) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tolvan Tolvansson")]))
        .issuer_name(issuer.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    return sign_certificate(builder, issuer_key)


def write_pem(path: Path, item: x509.Certificate | x509.CertificateRevocationList) -> Path:
    path.write_bytes(item.public_bytes(serialization.Encoding.PEM))
    return path


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=30)


# -- signing ---------------------------------------------------------------------------


def test_a_key_made_in_the_token_signs_what_its_public_key_verifies(token_key: Pkcs11Key):
    data = b"TBSCertificate bytes, or any other"
    signature = token_key.sign(data)
    verify(token_key, signature, data)
    assert isinstance(token_key, SigningKey)


def test_an_ec_signature_is_der_as_x509_wants_it_not_the_tokens_raw_r_and_s(ec_key: Pkcs11Key):
    signature = ec_key.sign(b"data")
    assert signature[0] == 0x30  # a DER SEQUENCE of r and s
    assert signature[1] == len(signature) - 2


def test_a_key_says_which_token_and_label_it_is(ec_key: Pkcs11Key, token: SoftHSMToken):
    assert ec_key.label == f"PKCS#11 token '{token.config.token_label}' key 'test-ec-ca'"


def test_a_key_opened_again_by_its_label_is_the_same_key(token_key: Pkcs11Key, token: SoftHSMToken):
    again = open_token_key(token.config, token_key.key_label)
    assert der(again.public_key) == der(token_key.public_key)
    verify(token_key, again.sign(b"x"), b"x")


@contextlib.contextmanager
def side_session(token: SoftHSMToken) -> Iterator[pkcs11.Session]:
    """A second session of this process on the token, sharing the login of the keys' session."""
    library = pkcs11.lib(token.config.module)
    session = library.get_token(token_label=token.config.token_label).open(rw=True)
    try:
        yield session
    finally:
        session.close()


def test_the_private_key_cannot_be_taken_out_of_the_token(token_key: Pkcs11Key, token: SoftHSMToken):
    token_key.sign(b"log in")
    with side_session(token) as session:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=token_key.key_label)
        assert private[Attribute.TOKEN] is True
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.NEVER_EXTRACTABLE] is True
        assert private[Attribute.SIGN] is True
        assert private[Attribute.DECRYPT] is False
        assert private[Attribute.UNWRAP] is False
        assert private[Attribute.DERIVE] is False
        is_ec = isinstance(token_key.public_key, ec.EllipticCurvePublicKey)
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            private[Attribute.VALUE if is_ec else Attribute.PRIVATE_EXPONENT]
        # Nor wrapped (encrypted) under a key of our choosing, the other way out of an HSM.
        wrapping_key = session.generate_key(
            pkcs11.KeyType.AES, 256, capabilities=pkcs11.MechanismFlag.WRAP | pkcs11.MechanismFlag.UNWRAP
        )
        with pytest.raises(pkcs11.exceptions.KeyUnextractable):
            wrapping_key.wrap_key(private, mechanism=pkcs11.Mechanism.AES_KEY_WRAP_PAD)
        # The key id is the public key's identifier, so tools pair the key with its certificate.
        assert private[Attribute.ID] == x509.SubjectKeyIdentifier.from_public_key(token_key.public_key).digest


def replace_public_key_by_certificate(token: SoftHSMToken, label: str, certificate: x509.Certificate) -> None:
    """Make ``label`` look like a key imported with its certificate: no public key object."""
    with side_session(token) as session:
        session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label).destroy()
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.LABEL: label,
                Attribute.SUBJECT: certificate.subject.public_bytes(),
                Attribute.VALUE: certificate.public_bytes(serialization.Encoding.DER),
            }
        )


def test_a_key_without_a_public_key_object_is_found_through_its_certificate(token: SoftHSMToken):
    key = generate_token_key(token.config, "imported-with-certificate")
    key.sign(b"log in")
    certificate = ca_certificate(key, "Imported CA")
    replace_public_key_by_certificate(token, "imported-with-certificate", certificate)

    opened = open_token_key(token.config, "imported-with-certificate")
    assert der(opened.public_key) == der(certificate.public_key())
    leaf_certificate(certificate, opened).verify_directly_issued_by(certificate)


def test_a_certificate_in_the_token_that_belongs_to_another_key_is_refused(
    ec_key: Pkcs11Key, token: SoftHSMToken
):
    key = generate_token_key(token.config, "mixed-up")
    key.sign(b"log in")
    replace_public_key_by_certificate(token, "mixed-up", ca_certificate(ec_key, "Some other CA"))
    with pytest.raises(PKIError, match="does not belong to the private key"):
        open_token_key(token.config, "mixed-up")


def test_an_existing_label_is_never_overwritten(ec_key: Pkcs11Key, token: SoftHSMToken):
    before = der(ec_key.public_key)
    with pytest.raises(PKIError, match="already holds an object labelled 'test-ec-ca'"):
        generate_token_key(token.config, "test-ec-ca")
    assert der(open_token_key(token.config, "test-ec-ca").public_key) == before


def test_four_threads_signing_at_once_all_get_valid_signatures(ec_key: Pkcs11Key, token: SoftHSMToken):
    results: list[tuple[bytes, bytes]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    # All threads start together on a token whose session just died: they race to log in again too.
    ec_key.sign(b"a session to lose")
    pkcs11.lib(token.config.module).reinitialize()
    start = threading.Barrier(4)

    def work(worker: int) -> None:
        try:
            start.wait(timeout=30)
            for n in range(25):
                data = f"thread {worker} signature {n}".encode()
                signature = ec_key.sign(data)
                with lock:
                    results.append((data, signature))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(results) == 100
    for data, signature in results:
        verify(ec_key, signature, data)


def test_a_key_signs_again_after_the_module_was_reset(ec_key: Pkcs11Key, token: SoftHSMToken):
    ec_key.sign(b"before")
    # C_Finalize + C_Initialize: every session handle of the process dies, as when an HSM restarts.
    pkcs11.lib(token.config.module).reinitialize()
    verify(ec_key, ec_key.sign(b"after"), b"after")


# -- certificates and CRLs signed in the token ---------------------------------------------


def test_a_ca_whose_key_is_in_the_token_issues_certificates_openssl_accepts(
    token_key: Pkcs11Key, tmp_path: Path
):
    ca = ca_certificate(token_key, "Token Signing CA")
    leaf = leaf_certificate(ca, token_key)
    ca.verify_directly_issued_by(ca)
    leaf.verify_directly_issued_by(ca)
    ca_pem, leaf_pem = write_pem(tmp_path / "ca.pem", ca), write_pem(tmp_path / "leaf.pem", leaf)

    verified = openssl("verify", "-CAfile", ca_pem, leaf_pem)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == f"{leaf_pem}: OK"

    # The same names under another key: openssl must refuse, so the OK above means something.
    impostor = ca_certificate(SoftwareKey(ec.generate_private_key(ec.SECP256R1())), "Token Signing CA")
    impostor_pem = write_pem(tmp_path / "impostor.pem", impostor)
    assert openssl("verify", "-CAfile", impostor_pem, leaf_pem).returncode != 0


def test_a_crl_signed_in_the_token_verifies_with_openssl(token_key: Pkcs11Key, tmp_path: Path):
    now = dt.datetime.now(dt.UTC)
    ca = ca_certificate(token_key, "Token CRL CA")
    revoked = leaf_certificate(ca, token_key)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(revoked.serial_number).revocation_date(now).build()
        )
    )
    crl = sign_crl(builder, token_key)
    assert crl.is_signature_valid(token_key.public_key)
    ca_pem, crl_pem = write_pem(tmp_path / "ca.pem", ca), write_pem(tmp_path / "crl.pem", crl)

    checked = openssl("crl", "-in", crl_pem, "-CAfile", ca_pem, "-noout", "-text")
    assert checked.returncode == 0, checked.stderr
    assert "verify OK" in checked.stdout + checked.stderr
    assert f"{revoked.serial_number:X}" in checked.stdout.replace(":", "").upper()


# -- failures ---------------------------------------------------------------------------------


def test_a_wrong_pin_is_refused_and_the_message_does_not_show_it(ec_key: Pkcs11Key, token: SoftHSMToken):
    wrong = dataclasses.replace(token.config, pin=WRONG_PIN)
    with pytest.raises(PKIError, match="PIN") as caught:
        open_token_key(wrong, "test-ec-ca")
    assert "wrong" in caught.value.message
    texts = [
        str(caught.value),
        repr(caught.value),
        repr(caught.value.__cause__),
        repr(caught.value.__context__),
    ]
    assert not any(WRONG_PIN in text for text in texts)
    # The right PIN still works: the keys in use log in again.
    verify(ec_key, ec_key.sign(b"still here"), b"still here")


def test_a_label_the_token_does_not_hold_is_refused(token: SoftHSMToken):
    with pytest.raises(PKIError, match="no private key labelled 'no-such-key'"):
        open_token_key(token.config, "no-such-key")


def test_a_token_that_is_not_there_is_refused(token: SoftHSMToken):
    with pytest.raises(PKIError, match="no PKCS#11 token 'no-such-token'"):
        open_token_key(dataclasses.replace(token.config, token_label="no-such-token"), "test-ec-ca")


def test_a_module_that_does_not_load_is_refused(token: SoftHSMToken, tmp_path: Path):
    not_a_module = tmp_path / "libnothing.so"
    not_a_module.write_bytes(b"not a shared library")
    with pytest.raises(PKIError, match="cannot be loaded"):
        open_token_key(dataclasses.replace(token.config, module=str(not_a_module)), "test-ec-ca")


def test_the_pin_is_not_in_the_configurations_repr(token: SoftHSMToken):
    assert token.config.pin not in repr(token.config)
    assert token.config.pin not in str(token.config)


# -- configuration from the environment -----------------------------------------------------

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
FULL = {
    "ESIGN_PKCS11_MODULE": MODULE,
    "ESIGN_PKCS11_TOKEN": "esign",
    "ESIGN_PKCS11_PIN": "123456",
    "ESIGN_PKCS11_CA_KEY_LABEL": "issuing-ca",
    "ESIGN_PKCS11_TSA_KEY_LABEL": "tsa",
}


def test_no_module_in_the_environment_means_keys_in_files():
    assert Pkcs11Config.from_environ({}) is None
    assert Pkcs11Config.from_environ({"ESIGN_PKCS11_MODULE": "", "PATH": "/usr/bin"}) is None


def test_a_full_environment_gives_the_configuration():
    assert Pkcs11Config.from_environ(FULL) == Pkcs11Config(
        module=MODULE, token_label="esign", pin="123456", ca_key_label="issuing-ca", tsa_key_label="tsa"
    )


def test_the_pin_can_come_from_a_file(tmp_path: Path):
    pin_file = tmp_path / "pin"
    pin_file.write_text("654321\n")
    environ = {k: v for k, v in FULL.items() if k != "ESIGN_PKCS11_PIN"}
    config = Pkcs11Config.from_environ({**environ, "ESIGN_PKCS11_PIN_FILE": str(pin_file)})
    assert config is not None
    assert config.pin == "654321"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ESIGN_PKCS11_TOKEN": None}, "ESIGN_PKCS11_TOKEN"),
        ({"ESIGN_PKCS11_PIN": None}, "neither ESIGN_PKCS11_PIN nor ESIGN_PKCS11_PIN_FILE"),
        ({"ESIGN_PKCS11_PIN_FILE": "/etc/hostname"}, "either ESIGN_PKCS11_PIN or ESIGN_PKCS11_PIN_FILE"),
        (
            {"ESIGN_PKCS11_PIN": None, "ESIGN_PKCS11_PIN_FILE": "/nonexistent/pin"},
            "PIN file /nonexistent/pin",
        ),
        ({"ESIGN_PKCS11_CA_KEY_LABEL": None, "ESIGN_PKCS11_TSA_KEY_LABEL": None}, "names no key"),
        ({"ESIGN_PKCS11_MODULE": "/nonexistent/libhsm.so"}, "not a file"),
        ({"ESIGN_PKCS11_MODULE": None}, "ESIGN_PKCS11_MODULE is not"),
    ],
    ids=["no token", "no pin", "two pins", "unreadable pin file", "no key", "no module file", "no module"],
)
def test_half_a_configuration_is_refused_with_what_is_missing(change: dict, message: str):
    environ = {k: v for k, v in {**FULL, **change}.items() if v is not None}
    with pytest.raises(PKIError, match=message) as caught:
        Pkcs11Config.from_environ(environ)
    assert "123456" not in caught.value.message


def test_only_the_ca_key_may_be_in_the_token():
    config = Pkcs11Config.from_environ({k: v for k, v in FULL.items() if k != "ESIGN_PKCS11_TSA_KEY_LABEL"})
    assert config is not None
    assert (config.ca_key_label, config.tsa_key_label) == ("issuing-ca", None)


# -- a PAdES signature whose certificate the token-held issuing CA issued -----------------------


def test_a_document_signed_under_an_issuing_ca_in_the_token_is_valid_for_pdfsig(
    token: SoftHSMToken, documents, tolvan, tmp_path: Path
):
    directory = tmp_path / "pki"
    SitePKI.create(
        directory,
        passphrase=PASSPHRASE,
        organisation=ORGANISATION,
        issuing_key=generate_token_key(token.config, "e2e-issuing-ca"),
    )
    # The issuing key is nowhere on disk; the site finds it in the token by its label.
    assert not (directory / "issuing-key.pem").exists()
    pki = SitePKI.load(
        directory, passphrase=PASSPHRASE, hsm=dataclasses.replace(token.config, ca_key_label="e2e-issuing-ca")
    )
    assert pki.issuing_key_label == f"PKCS#11 token '{token.config.token_label}' key 'e2e-issuing-ca'"

    signed, result = sign_pdf_bytes(documents.data("reportlab"), identity=tolvan, pki=pki)
    certificate = x509.load_der_x509_certificate(result.certificate_der)
    certificate.verify_directly_issued_by(pki.issuing_certificate)
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)

    [signature] = pdfsig(path, pki.root_certificate)
    assert signature["signature"] == "Signature is Valid."
    assert signature["certificate"] == "Certificate is Trusted."
    assert signature["signer"] == "Tolvan Tolvansson"
    assert signature["total"] is True
    assert qpdf_check(path)[0]


def test_an_issuing_key_moved_from_its_file_into_the_token_signs_under_the_same_certificate(
    token: SoftHSMToken, tolvan, tmp_path: Path
):
    # What an administrator does to an existing site (see the README): import the
    # encrypted key file into the token with softhsm2-util, delete the file, set the label.
    directory = tmp_path / "pki"
    SitePKI.create(directory, passphrase=PASSPHRASE, organisation=ORGANISATION)
    issuing = x509.load_pem_x509_certificate((directory / "issuing.pem").read_bytes())
    key_id = issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    imported = subprocess.run(
        [
            "softhsm2-util",
            "--import",
            str(directory / "issuing-key.pem"),
            "--file-pin",
            PASSPHRASE.decode(),
            "--token",
            token.config.token_label,
            "--label",
            "moved-issuing-ca",
            "--id",
            key_id,
            "--pin",
            token.config.pin,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **token.environ},
        timeout=60,
    )
    assert imported.returncode == 0, imported.stderr
    (directory / "issuing-key.pem").unlink()

    pki = SitePKI.load(
        directory,
        passphrase=PASSPHRASE,
        hsm=dataclasses.replace(token.config, ca_key_label="moved-issuing-ca"),
    )
    assert pki.issuing_key_label == f"PKCS#11 token '{token.config.token_label}' key 'moved-issuing-ca'"
    one_time_key = ec.generate_private_key(ec.SECP256R1())
    certificate = pki.issue_one_time_certificate(
        tolvan, one_time_key.public_key(), validity=dt.timedelta(minutes=10)
    )
    certificate.verify_directly_issued_by(issuing)
    with side_session(token) as session:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="moved-issuing-ca")
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
