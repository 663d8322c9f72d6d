"""The site's time-stamping authority (RFC 3161), served over HTTP as the add-on serves it.

pyHanko's ``HTTPTimeStamper`` must get tokens from it for PAdES B-T and above, and an
independent verifier (``openssl ts``) must accept those tokens — with EC and RSA TSA
keys. Requests the TSA cannot honour get an RFC 3161 rejection with the right failInfo.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import subprocess
import urllib.request
from pathlib import Path

import pytest
from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from esign.plone.errors import PKIError
from esign.plone.signing.keys import SoftwareKey
from esign.plone.signing.tsa import (
    TIMESTAMP_QUERY,
    TIMESTAMP_REPLY,
    TSA_POLICY_OID,
    TimeStampAuthority,
    tsa_certificate_builder,
)
from helpers.pdfs import TestDocuments
from helpers.trustserver import ThrowawayCA, TrustServer, new_key, signature_timestamp_token
from helpers.validators import pdfsig

# A moment within the test TSA certificate's validity, with a fraction of a second.
CLOCK = (dt.datetime.now(dt.UTC) + dt.timedelta(days=400)).replace(microsecond=750000)


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=30)


def _post(url: str, body: bytes) -> tuple[str, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": TIMESTAMP_QUERY})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a local test server
        return response.headers["Content-Type"], response.read()


def _request(digest: bytes, *, algorithm: str = "sha256", **fields_) -> bytes:
    values = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": digest},
        **fields_,
    }
    return tsp.TimeStampReq(values).dump()


class _Status(core.Sequence):
    # asn1crypto's TimeStampResp insists on a token, which a rejection must not have
    # (RFC 3161 §2.4.2; wbond/asn1crypto#286): read only the status.
    _fields = [("status", tsp.PKIStatusInfo)]  # noqa: RUF012 - asn1crypto's declaration style


def _status(response: bytes) -> dict:
    return _Status.load(response, strict=False)["status"].native


def _tst_info(token: cms.ContentInfo) -> tsp.TSTInfo:
    return token["content"]["encap_content_info"]["content"].parsed


@pytest.fixture(scope="module", params=["ec", "rsa"])
def ca(request: pytest.FixtureRequest) -> ThrowawayCA:
    """CAs with EC keys and a TSA key of either kind (pyHanko's own test TSA does RSA only)."""
    return ThrowawayCA.create(kind="ec", tsa_kind=request.param)


@pytest.fixture(scope="module")
def ec_ca() -> ThrowawayCA:
    return ThrowawayCA.create(kind="ec")


@pytest.fixture
def server(ca: ThrowawayCA):
    with TrustServer(tsa=ca.tsa()) as running:
        yield running


@pytest.fixture
def pem(ca: ThrowawayCA, tmp_path: Path) -> dict[str, Path]:
    return ca.write_pem(tmp_path)


# -- pyHanko as the client ----------------------------------------------------------------


def test_pyhanko_gets_a_token_over_http_that_pyhanko_trusts(ca: ThrowawayCA, server: TrustServer):
    digest = hashlib.sha256(b"Beslut om bygglov").digest()
    timestamper = HTTPTimeStamper(f"{server.url}/esign-pki/tsa")
    # pyHanko sends a nonce and refuses a token that does not echo it.
    token = asyncio.run(timestamper.async_timestamp(digest, "sha256"))
    assert ("POST", "/esign-pki/tsa") in server.requests
    context = ValidationContext(trust_roots=[_asn1(ca.root)], allow_fetching=False)
    status = TimestampSignatureStatus(
        **asyncio.run(
            validate_tst_signed_data(
                token["content"], context, expected_tst_imprint=lambda _algorithm: digest
            )
        )
    )
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    assert status.signing_cert.subject == _asn1(ca.tsa_certificate).subject
    tst_info = _tst_info(token)
    assert tst_info["policy"].dotted == TSA_POLICY_OID
    assert tst_info["nonce"].native is not None


def test_a_token_over_other_data_is_not_intact_for_pyhanko(ca: ThrowawayCA):
    token = cms.ContentInfo.load(ca.tsa().timestamp(hashlib.sha256(b"original").digest()))
    context = ValidationContext(trust_roots=[_asn1(ca.root)], allow_fetching=False)
    forged = hashlib.sha256(b"forged").digest()
    status = TimestampSignatureStatus(
        **asyncio.run(validate_tst_signed_data(token["content"], context, lambda _algorithm: forged))
    )
    # Signature and chain are fine (no trust problem); the imprint is not that of the data.
    assert status.valid and status.trust_problem_indic is None
    assert not status.intact
    assert not status.trusted


# -- openssl as the client and as the verifier ------------------------------------------------


def test_openssl_verifies_a_token_it_asked_for(ca: ThrowawayCA, server: TrustServer, pem, tmp_path: Path):
    data = tmp_path / "beslut.txt"
    data.write_text("Beslut om bygglov, Testkommunen\n")
    query = tmp_path / "request.tsq"
    _openssl("ts", "-query", "-data", data, "-sha256", "-cert", "-out", query)
    content_type, body = _post(f"{server.url}/tsa", query.read_bytes())
    assert content_type == TIMESTAMP_REPLY
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(body)

    by_query = _openssl("ts", "-verify", "-queryfile", query, "-in", reply, "-CAfile", pem["root"])
    assert "Verification: OK" in by_query.stdout, by_query.stdout + by_query.stderr
    by_data = _openssl("ts", "-verify", "-data", data, "-in", reply, "-CAfile", pem["root"])
    assert "Verification: OK" in by_data.stdout, by_data.stdout + by_data.stderr

    text = _openssl("ts", "-reply", "-in", reply, "-text").stdout
    request_text = _openssl("ts", "-query", "-in", query, "-text").stdout
    nonce = next(line for line in request_text.splitlines() if line.startswith("Nonce:"))
    assert "Status: Granted." in text
    assert f"Policy OID: {TSA_POLICY_OID}" in text
    assert nonce in text.splitlines()
    assert "Accuracy: 0x01 seconds" in text
    assert "TSA: DirName:/C=SE/O=Testkommunen/CN=Testkommunen Time Stamping Authority" in text


def test_without_cert_req_the_token_carries_no_certificates(ca: ThrowawayCA, pem, tmp_path: Path):
    data = tmp_path / "beslut.txt"
    data.write_text("Beslut\n")
    query = tmp_path / "request.tsq"
    _openssl("ts", "-query", "-data", data, "-sha256", "-out", query)  # no -cert
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(ca.tsa().respond(query.read_bytes()))
    token = tsp.TimeStampResp.load(reply.read_bytes())["time_stamp_token"]
    assert not token["content"]["certificates"]
    without = _openssl("ts", "-verify", "-queryfile", query, "-in", reply, "-CAfile", pem["root"])
    assert "Verification: OK" not in without.stdout
    given = _openssl(
        "ts", "-verify", "-queryfile", query, "-in", reply, "-CAfile", pem["root"], "-untrusted", pem["tsa"]
    )
    assert "Verification: OK" in given.stdout, given.stdout + given.stderr


def test_gen_time_comes_from_the_clock_in_whole_seconds_with_the_accuracy(ca: ThrowawayCA):
    token = cms.ContentInfo.load(ca.tsa(clock=lambda: CLOCK).timestamp(bytes(32)))
    tst_info = _tst_info(token)
    assert tst_info["gen_time"].native == CLOCK.replace(microsecond=0)
    assert tst_info["accuracy"].native == {"seconds": 1, "millis": None, "micros": None}
    signed_attrs = token["content"]["signer_infos"][0]["signed_attrs"]
    signing_time = next(a for a in signed_attrs if a["type"].native == "signing_time")
    assert signing_time["values"][0].native == CLOCK.replace(microsecond=0)
    unstated = cms.ContentInfo.load(ca.tsa(clock=lambda: CLOCK, accuracy_seconds=0).timestamp(bytes(32)))
    assert _tst_info(unstated)["accuracy"].native is None


def test_every_token_has_its_own_long_random_serial_number(ca: ThrowawayCA):
    tsa = ca.tsa()
    serials = [
        _tst_info(cms.ContentInfo.load(tsa.timestamp(bytes(32))))["serial_number"].native for _ in range(20)
    ]
    assert len(set(serials)) == 20
    assert all(0 < serial < 2**160 for serial in serials)
    assert max(serial.bit_length() for serial in serials) > 64


def test_the_token_names_the_tsa_certificate_in_signing_certificate_v2(ca: ThrowawayCA):
    token = cms.ContentInfo.load(ca.tsa().timestamp(bytes(48), algorithm="sha384"))
    signer_info = token["content"]["signer_infos"][0]
    attributes = {a["type"].native: a["values"][0] for a in signer_info["signed_attrs"]}
    assert set(attributes) == {"content_type", "signing_time", "message_digest", "signing_certificate_v2"}
    assert attributes["content_type"].native == "tst_info"
    (cert_id,) = attributes["signing_certificate_v2"]["certs"]
    tsa_der = ca.tsa_certificate.public_bytes(serialization.Encoding.DER)
    assert cert_id["hash_algorithm"]["algorithm"].native == "sha512"
    assert cert_id["cert_hash"].native == hashlib.sha512(tsa_der).digest()
    assert cert_id["issuer_serial"]["serial_number"].native == ca.tsa_certificate.serial_number
    assert _tst_info(token)["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha384"


def test_reading_a_token_leaves_it_as_parsed(ca: ThrowawayCA):
    """No field is left at a DEFAULT that a reader fills in: asn1crypto would mark the token
    changed, and a signature's CMS holding it then costs 2^depth work on every dump()."""
    token = cms.ContentInfo.load(ca.tsa().timestamp(bytes(32)))
    assert token.native  # reads every field, as validators do
    assert not token._is_mutated()


# -- rejections -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_der", "fail_info", "openssl_says"),
    [
        (b"\x30\x03\x02\x01\x01garbage", "bad_data_format", "the data submitted has the wrong format"),
        (
            _request(hashlib.sha1(b"x", usedforsecurity=False).digest(), algorithm="sha1"),
            "bad_alg",
            "unrecognized or unsupported algorithm identifier",
        ),
        (_request(bytes(20)), "bad_data_format", "the data submitted has the wrong format"),
        (
            _request(bytes(32), req_policy="1.2.752.201.1.1"),
            "unaccepted_policy",
            "the requested TSA policy is not supported by the TSA",
        ),
        (
            _request(bytes(32), extensions=[{"extn_id": "1.2.3.4", "extn_value": b"\x05\x00"}]),
            "unaccepted_extensions",
            "the requested extension is not supported by the TSA",
        ),
    ],
    ids=["garbage", "sha1", "short-digest", "other-policy", "extension"],
)
def test_requests_the_tsa_cannot_honour_are_rejected(ca, request_der, fail_info, openssl_says, tmp_path):
    response = ca.tsa().respond(request_der)
    status = _status(response)
    assert status["status"] == "rejection"
    assert status["fail_info"] == {fail_info}
    assert status["status_string"]
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(response)
    text = _openssl("ts", "-reply", "-in", reply, "-text").stdout
    assert "Status: Rejected." in text
    assert openssl_says in text
    assert "TST info:\nNot included." in text


def test_no_token_is_made_outside_the_tsa_certificates_validity(ca: ThrowawayCA):
    after_expiry = ca.tsa_certificate.not_valid_after_utc + dt.timedelta(seconds=1)
    tsa = ca.tsa(clock=lambda: after_expiry)
    assert _status(tsa.respond(_request(bytes(32))))["fail_info"] == {"system_failure"}
    with pytest.raises(PKIError, match="not valid at"):
        tsa.timestamp(bytes(32))


def test_our_own_policy_may_be_asked_for(ca: ThrowawayCA):
    response = tsp.TimeStampResp.load(ca.tsa().respond(_request(bytes(32), req_policy=TSA_POLICY_OID)))
    assert response["status"]["status"].native == "granted"


def test_signing_stops_when_the_tsa_key_refuses(ca: ThrowawayCA, documents: TestDocuments):
    class UnpluggedToken:
        public_key = ca.tsa_key.public_key
        label = "PKCS#11 token esign/tsa"

        def sign(self, data: bytes) -> bytes:
            raise PKIError("The token is not present.")

    tsa = TimeStampAuthority(ca.tsa_certificate, UnpluggedToken(), [ca.root])
    assert _status(tsa.respond(_request(bytes(32))))["fail_info"] == {"system_failure"}
    with pytest.raises(PKIError, match="not present"):
        tsa.timestamp(bytes(32))

    with TrustServer(tsa=tsa) as server:
        signer, _leaf = _signer(ca)
        meta = signers.PdfSignatureMetadata(field_name="Signature1", subfilter=fields.SigSeedSubFilter.PADES)
        output = io.BytesIO()
        # pyHanko reads the rejection with asn1crypto, which fails on the (correctly)
        # absent token (wbond/asn1crypto#286): a ValueError rather than its own error.
        with pytest.raises((TimestampRequestError, ValueError)):
            signers.PdfSigner(meta, signer=signer, timestamper=HTTPTimeStamper(f"{server.url}/tsa")).sign_pdf(
                IncrementalPdfFileWriter(io.BytesIO(documents.data("reportlab"))), output=output
            )
    assert output.getvalue() == b""


# -- the TSA certificate ---------------------------------------------------------------------------


def test_the_tsa_certificate_is_for_timestamping_only(ca: ThrowawayCA, pem):
    purposes = _openssl("x509", "-in", pem["tsa"], "-noout", "-purpose").stdout
    assert "Time Stamp signing : Yes" in purposes
    assert "S/MIME signing : No" in purposes
    assert "SSL client : No" in purposes
    extensions = ca.tsa_certificate.extensions
    usage = extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert usage.critical and list(usage.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    key_usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical and key_usage.value.digital_signature and key_usage.value.content_commitment
    assert not extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    verify = _openssl("verify", "-purpose", "timestampsign", "-CAfile", pem["root"], pem["tsa"])
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_the_builder_makes_random_serials_and_key_identifiers(ec_ca: ThrowawayCA):
    key = new_key("ec")
    now = dt.datetime.now(dt.UTC)

    def build() -> x509.Certificate:
        builder = tsa_certificate_builder(
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TSA")]),
            public_key=key.public_key(),
            issuer_certificate=ec_ca.root,
            not_before=now,
            not_after=now + dt.timedelta(days=365),
        )
        return builder.sign(ec_ca.root_key.private_key, ec_ca.root.signature_hash_algorithm)

    first, second = build(), build()
    assert first.serial_number != second.serial_number
    assert 0 < first.serial_number < 2**159
    root_ski = ec_ca.root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aki = first.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == root_ski
    ski = first.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def test_the_tsa_refuses_a_certificate_or_key_not_made_for_it(ec_ca: ThrowawayCA):
    with pytest.raises(PKIError, match="id-kp-timeStamping"):
        TimeStampAuthority(ec_ca.issuing, ec_ca.issuing_key)
    with pytest.raises(PKIError, match="does not belong"):
        TimeStampAuthority(ec_ca.tsa_certificate, SoftwareKey(new_key("ec")))


# -- a PAdES B-T signature --------------------------------------------------------------------------


def _signer(ca: ThrowawayCA) -> tuple[signers.SimpleSigner, x509.Certificate]:
    from asn1crypto import keys as asn1_keys

    certificate, key = ca.issue("Tolvan Tolvansson")
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = signers.SimpleSigner(
        signing_cert=_asn1(certificate),
        signing_key=asn1_keys.PrivateKeyInfo.load(pkcs8),
        cert_registry=SimpleCertificateStore.from_certs([_asn1(ca.issuing), _asn1(ca.root)]),
    )
    return signer, certificate


def test_a_b_t_signature_validates_with_pdfsig_and_its_timestamp_with_openssl(
    documents: TestDocuments, tmp_path: Path
):
    with TrustServer() as server:
        # Certificates name this server's OCSP responder; pdfsig (NSS) asks it.
        ca = ThrowawayCA.create(kind="ec", tsa_kind="rsa", base_url=server.url)
        registry = ca.registry()
        server.tsa = ca.tsa()
        server.ocsp = ca.ocsp_responder(registry)
        signer, leaf = _signer(ca)
        registry.add(leaf, kind="signature")
        meta = signers.PdfSignatureMetadata(field_name="Signature1", subfilter=fields.SigSeedSubFilter.PADES)
        signed = tmp_path / "signed.pdf"
        with signed.open("wb") as output:
            signers.PdfSigner(
                meta, signer=signer, timestamper=HTTPTimeStamper(f"{server.url}/esign-pki/tsa")
            ).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(documents.data("reportlab"))), output=output)

        (signature,) = pdfsig(signed, ca.root)
        assert signature["signature"] == "Signature is Valid."
        assert signature["certificate"] == "Certificate is Trusted."
        assert signature["type"] == "ETSI.CAdES.detached"
        assert any(
            method == "GET" and path.startswith("/esign-pki/ocsp/") for method, path in server.requests
        )

    # pdfsig does not show the signature timestamp; openssl checks it against the signature value.
    embedded = PdfFileReader(io.BytesIO(signed.read_bytes())).embedded_signatures[0]
    token = tmp_path / "token.der"
    token.write_bytes(signature_timestamp_token(embedded).dump())
    root = ca.write_pem(tmp_path)["root"]
    digest = hashlib.sha256(embedded.signer_info["signature"].native).hexdigest()
    verify = _openssl("ts", "-verify", "-digest", digest, "-in", token, "-token_in", "-CAfile", root)
    assert "Verification: OK" in verify.stdout, verify.stdout + verify.stderr

    context = ValidationContext(trust_roots=[_asn1(ca.root)], allow_fetching=False)
    status = validate_pdf_signature(
        embedded, signer_validation_context=context, ts_validation_context=context
    )
    assert status.bottom_line, status.pretty_print_details()
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted
    assert leaf.not_valid_before_utc <= status.timestamp_validity.timestamp <= leaf.not_valid_after_utc
