"""The site CA's revocation services: the register, the OCSP responder and the CRLs.

What a verifier sees is checked with independent tools: ``openssl ocsp`` against the
responder over HTTP, ``openssl crl``/``openssl verify`` on the CRLs, and pyHanko's
certvalidator, which must accept both for PAdES B-LT/B-LTA — also long after the
one-time certificate expired.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from asn1crypto import core, ocsp
from asn1crypto import crl as asn1_crl
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec, SimpleTrustManager
from pyhanko_certvalidator.errors import RevokedError
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer

from esign.plone.errors import PKIError
from esign.plone.signing.revocation import (
    OCSP_REQUEST,
    CertificateRegistry,
    IssuedCertificate,
    MemoryRegistry,
    OCSPResponder,
    build_crl,
    key_identifier,
)
from helpers.pdfs import TestDocuments
from helpers.trustserver import ThrowawayCA, TrustServer, new_key, signature_timestamp_token

NOW = dt.datetime(2031, 3, 14, 9, 26, 53, 589793, tzinfo=dt.UTC)


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(_der(certificate))


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=30)


def _post(url: str, body: bytes, content_type: str) -> bytes:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a local test server
        return response.read()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a local test server
        return response.read()


def _pem_crl(directory: Path, name: str, der: bytes) -> Path:
    path = directory / name
    path.write_bytes(x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def server():
    with TrustServer() as running:
        yield running


@pytest.fixture(scope="module")
def ca(server: TrustServer) -> ThrowawayCA:
    # Certificates point at the test server, so verifiers that follow the AIA find it.
    return ThrowawayCA.create(base_url=server.url)


@pytest.fixture
def registry(ca: ThrowawayCA) -> MemoryRegistry:
    return ca.registry()


@pytest.fixture
def responder(ca: ThrowawayCA, registry: MemoryRegistry, server: TrustServer) -> OCSPResponder:
    server.ocsp = ca.ocsp_responder(registry)
    server.root_ocsp = ca.root_ocsp_responder(registry)
    server.crls = {
        "issuing.crl": lambda: ca.issuing_crl(registry),
        "root.crl": lambda: ca.root_crl(registry),
    }
    return server.ocsp


@pytest.fixture
def leaf(ca: ThrowawayCA, registry: MemoryRegistry) -> x509.Certificate:
    certificate, _key = ca.issue("Tolvan Tolvansson")
    registry.add(certificate, kind="signature")
    return certificate


@pytest.fixture
def pem(ca: ThrowawayCA, leaf: x509.Certificate, tmp_path: Path) -> dict[str, Path]:
    paths = ca.write_pem(tmp_path, leaf=leaf)
    paths["chain"] = tmp_path / "chain.pem"
    paths["chain"].write_bytes(paths["issuing"].read_bytes() + paths["root"].read_bytes())
    return paths


# -- the register --------------------------------------------------------------


def test_the_register_records_what_the_revocation_services_need(ca: ThrowawayCA, leaf: x509.Certificate):
    registry = MemoryRegistry()
    registry.add(leaf, kind="signature")
    entry = registry.get(leaf.serial_number)
    assert entry == IssuedCertificate(
        serial=leaf.serial_number,
        subject="CN=Tolvan Tolvansson,O=Testkommunen,C=SE",
        issuer="CN=Testkommunen Signing CA,O=Testkommunen,C=SE",
        issuer_key_id=key_identifier(ca.issuing),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        kind="signature",
    )
    assert entry.is_issued_by(ca.issuing)
    assert not entry.is_issued_by(ca.root)
    assert isinstance(registry, CertificateRegistry)


def test_revoking_keeps_the_first_revocation_in_whole_seconds(leaf: x509.Certificate):
    registry = MemoryRegistry(clock=lambda: NOW)
    registry.add(leaf, kind="signature")
    first = registry.revoke(leaf.serial_number, reason="key_compromise")
    again = registry.revoke(leaf.serial_number, reason="superseded", at=NOW + dt.timedelta(days=1))
    assert first.revoked_at == NOW.replace(microsecond=0)
    assert first.revocation_reason == "key_compromise"
    assert again == first == registry.get(leaf.serial_number)
    assert list(registry.revoked()) == [first]


@pytest.mark.parametrize(
    ("serial_offset", "options", "message"),
    [
        (1, {}, "No certificate with serial"),
        (0, {"reason": "because"}, "Unknown revocation reason"),
        (0, {"reason": "remove_from_crl"}, "Unknown revocation reason"),
        (0, {"at": dt.datetime(2031, 1, 1)}, "timezone-aware"),
    ],
)
def test_the_register_refuses_wrong_revocations(leaf, serial_offset, options, message):
    registry = MemoryRegistry()
    registry.add(leaf, kind="signature")
    with pytest.raises(PKIError, match=message):
        registry.revoke(leaf.serial_number + serial_offset, **options)
    assert not registry.get(leaf.serial_number).is_revoked


def test_the_register_refuses_a_second_certificate_with_the_same_serial(ca: ThrowawayCA, leaf):
    registry = MemoryRegistry()
    registry.add(leaf, kind="signature")
    registry.add(leaf, kind="signature")  # the same certificate again changes nothing
    impostor = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=Someone Else"))
        .issuer_name(ca.issuing.subject)
        .public_key(new_key("ec").public_key())
        .serial_number(leaf.serial_number)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(minutes=10))
        .sign(ca.issuing_key.private_key, hashes.SHA256())
    )
    with pytest.raises(PKIError, match="already registered"):
        registry.add(impostor, kind="signature")
    with pytest.raises(PKIError, match="Unknown certificate kind"):
        registry.add(ca.root, kind="root")
    assert len(registry) == 1


# -- OCSP, asked by openssl over HTTP ----------------------------------------------


def test_openssl_ocsp_hears_good_for_an_issued_certificate(server, responder, pem):
    result = _openssl(
        "ocsp", "-issuer", pem["issuing"], "-cert", pem["leaf"], "-url", f"{server.url}/esign-pki/ocsp",
        "-CAfile", pem["root"],
    )  # fmt: skip
    assert f"{pem['leaf']}: good" in result.stdout, result.stdout + result.stderr
    # openssl sends a nonce and checks the echo; a missing one gives a WARNING.
    assert "Response verify OK" in result.stderr
    assert "WARNING" not in result.stdout + result.stderr
    assert ("POST", "/esign-pki/ocsp") in server.requests


def test_openssl_ocsp_hears_revoked_with_time_and_reason(server, responder, registry, leaf, pem):
    revoked = registry.revoke(leaf.serial_number, reason="key_compromise")
    result = _openssl(
        "ocsp", "-issuer", pem["issuing"], "-cert", pem["leaf"], "-url", f"{server.url}/ocsp",
        "-CAfile", pem["root"],
    )  # fmt: skip
    assert f"{pem['leaf']}: revoked" in result.stdout, result.stdout + result.stderr
    assert "Reason: keyCompromise" in result.stdout
    assert f"Revocation Time: {revoked.revoked_at:%b %e %H:%M:%S %Y} GMT" in result.stdout
    assert "Response verify OK" in result.stderr


def test_openssl_ocsp_hears_unknown_for_a_serial_never_issued(server, responder, pem):
    result = _openssl(
        "ocsp", "-issuer", pem["issuing"], "-serial", "0x1234567890abcdef", "-url", f"{server.url}/ocsp",
        "-CAfile", pem["root"],
    )  # fmt: skip
    assert "0x1234567890abcdef: unknown" in result.stdout, result.stdout + result.stderr
    assert "Response verify OK" in result.stderr


def test_a_sha256_cert_id_is_answered_too(server, responder, pem):
    result = _openssl(
        "ocsp", "-sha256", "-issuer", pem["issuing"], "-cert", pem["leaf"], "-url", f"{server.url}/ocsp",
        "-CAfile", pem["root"],
    )  # fmt: skip
    assert f"{pem['leaf']}: good" in result.stdout, result.stdout + result.stderr


def test_a_question_about_another_cas_certificate_is_unauthorized(server, responder, pem):
    # The issuing CA's own certificate was issued by the root, not by this responder's CA.
    result = _openssl(
        "ocsp", "-issuer", pem["root"], "-cert", pem["issuing"], "-url", f"{server.url}/ocsp",
        "-CAfile", pem["root"],
    )  # fmt: skip
    assert "Responder Error: unauthorized (6)" in result.stdout + result.stderr


def test_garbage_gets_malformed_request(server, responder, tmp_path: Path):
    answer = tmp_path / "answer.der"
    answer.write_bytes(_post(f"{server.url}/ocsp", b"\x30\x03\x02\x01", OCSP_REQUEST))
    result = _openssl("ocsp", "-respin", answer, "-resp_text", "-noverify")
    assert "Responder Error: malformedrequest (1)" in result.stdout + result.stderr


def test_the_get_form_of_rfc_6960_works(server, responder, registry, leaf, pem, tmp_path: Path):
    registry.revoke(leaf.serial_number, reason="superseded")
    request = tmp_path / "request.der"
    _openssl("ocsp", "-no_nonce", "-issuer", pem["issuing"], "-cert", pem["leaf"], "-reqout", request)
    encoded = urllib.parse.quote(base64.b64encode(request.read_bytes()).decode(), safe="")
    answer = tmp_path / "answer.der"
    answer.write_bytes(_get(f"{server.url}/esign-pki/ocsp/{encoded}"))
    result = _openssl(
        "ocsp", "-respin", answer, "-issuer", pem["issuing"], "-cert", pem["leaf"], "-no_nonce",
        "-CAfile", pem["root"],
    )  # fmt: skip
    assert f"{pem['leaf']}: revoked" in result.stdout, result.stdout + result.stderr
    assert "Reason: superseded" in result.stdout
    assert ("GET", f"/esign-pki/ocsp/{encoded}") in server.requests


def test_a_get_that_is_not_base64_gets_malformed_request(ca, registry):
    answer = ca.ocsp_responder(registry).respond_to_get("not%20base64!")
    assert ocsp.OCSPResponse.load(answer)["response_status"].native == "malformed_request"


# -- OCSP response contents ----------------------------------------------------------


def _single(response_der: bytes) -> tuple[ocsp.ResponseData, ocsp.SingleResponse]:
    response = ocsp.OCSPResponse.load(response_der)
    assert response["response_status"].native == "successful"
    data = response.basic_ocsp_response["tbs_response_data"]
    return data, data["responses"][0]


def test_a_response_is_signed_by_the_ca_key_and_valid_for_a_day(ca: ThrowawayCA, registry, leaf):
    responder = OCSPResponder(ca.issuing, ca.issuing_key, registry, clock=lambda: NOW)
    response = ocsp.OCSPResponse.load(responder.response_for(leaf))
    basic = response.basic_ocsp_response
    data, single = _single(response.dump())
    moment = NOW.replace(microsecond=0)
    assert data["responder_id"].name == "by_key"
    assert data["responder_id"].native == _asn1(ca.issuing).public_key.sha1
    assert data["produced_at"].native == moment
    assert single["this_update"].native == moment
    assert single["next_update"].native == moment + dt.timedelta(days=1)
    assert single["cert_status"].name == "good"
    # The register keeps every certificate forever: status is archived since the CA began.
    assert single.archive_cutoff_value.native == ca.issuing.not_valid_before_utc
    assert [c.dump() for c in basic["certs"]] == [_der(ca.issuing)]
    assert basic["signature_algorithm"].signature_algo == "ecdsa"
    ca.issuing.public_key().verify(basic["signature"].native, data.dump(), ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize(
    "nonce",
    [core.OctetString(b"sixteen octets!!").dump(), b"\x8f raw, unwrapped nonce"],
    ids=["rfc-8954", "unwrapped"],
)
def test_the_nonce_comes_back_byte_for_byte(ca: ThrowawayCA, registry, leaf, nonce: bytes):
    responder = ca.ocsp_responder(registry)
    asn1_leaf, asn1_issuing = _asn1(leaf), _asn1(ca.issuing)
    placeholder = core.OctetString(b"N" * (len(nonce) - 2)).dump()
    request = ocsp.OCSPRequest(
        {
            "tbs_request": {
                "request_list": [
                    {
                        "req_cert": {
                            "hash_algorithm": {"algorithm": "sha256"},
                            "issuer_name_hash": asn1_leaf.issuer.sha256,
                            "issuer_key_hash": asn1_issuing.public_key.sha256,
                            "serial_number": leaf.serial_number,
                        }
                    }
                ],
                "request_extensions": [{"extn_id": "nonce", "extn_value": b"N" * (len(nonce) - 2)}],
            }
        }
    )
    # asn1crypto cannot build an unwrapped nonce; swap the bytes in (same length).
    request_der = request.dump().replace(placeholder, nonce)
    data, single = _single(responder.respond(request_der))
    (extension,) = data["response_extensions"]
    # Compared as bytes: asn1crypto would try to parse an unwrapped nonce.
    nonce_oid = core.ObjectIdentifier("1.3.6.1.5.5.7.48.1.2").dump()
    assert extension.dump() == core.Sequence(contents=nonce_oid + core.OctetString(nonce).dump()).dump()
    assert single["cert_id"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert single["cert_status"].name == "good"


def test_a_certificate_of_another_issuer_is_unknown_to_the_responder(ca: ThrowawayCA, registry):
    # The TSA certificate is in the register, but the root issued it: the issuing CA
    # cannot vouch for it even when asked with the issuing CA's CertID.
    responder = ca.ocsp_responder(registry)
    asn1_issuing = _asn1(ca.issuing)
    request = ocsp.OCSPRequest(
        {
            "tbs_request": {
                "request_list": [
                    {
                        "req_cert": {
                            "hash_algorithm": {"algorithm": "sha1"},
                            "issuer_name_hash": asn1_issuing.subject.sha1,
                            "issuer_key_hash": asn1_issuing.public_key.sha1,
                            "serial_number": ca.tsa_certificate.serial_number,
                        }
                    }
                ]
            }
        }
    )
    _data, single = _single(responder.respond(request.dump()))
    assert single["cert_status"].name == "unknown"
    with pytest.raises(PKIError, match="was not issued by"):
        responder.response_for(ca.tsa_certificate)


def test_a_refusing_key_gives_internal_error(ca: ThrowawayCA, registry, leaf):
    class UnpluggedToken:
        public_key = ca.issuing_key.public_key
        label = "PKCS#11 token esign/issuing"

        def sign(self, data: bytes) -> bytes:
            raise PKIError("The token is not present.")

    responder = OCSPResponder(ca.issuing, UnpluggedToken(), registry)
    request = ocsp.OCSPResponse.load(responder.respond(_ocsp_request_for(leaf, ca.issuing)))
    assert request["response_status"].native == "internal_error"
    with pytest.raises(PKIError, match="not present"):
        responder.response_for(leaf)


def _ocsp_request_for(certificate: x509.Certificate, issuer: x509.Certificate) -> bytes:
    from cryptography.x509 import ocsp as x509_ocsp

    builder = x509_ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303
    return builder.build().public_bytes(serialization.Encoding.DER)


def test_the_responder_refuses_a_key_that_is_not_the_cas(ca: ThrowawayCA, registry):
    with pytest.raises(PKIError, match="does not belong"):
        OCSPResponder(ca.issuing, ca.root_key, registry)


# -- CRLs ------------------------------------------------------------------------------


def test_openssl_verifies_the_issuing_crl_and_sees_the_revocation(ca, registry, leaf, pem, tmp_path):
    registry.revoke(leaf.serial_number, reason="key_compromise")
    crl = tmp_path / "issuing.crl"
    crl.write_bytes(ca.issuing_crl(registry))
    result = _openssl("crl", "-in", crl, "-inform", "DER", "-CAfile", pem["chain"], "-noout", "-text")
    assert "verify OK" in result.stderr, result.stderr
    serial_hex = f"{leaf.serial_number:X}"
    # openssl prints whole octets: a leading zero nibble stays.
    assert f"Serial Number: {serial_hex.zfill(len(serial_hex) + len(serial_hex) % 2)}" in result.stdout
    assert "Key Compromise" in result.stdout
    assert "X509v3 CRL Number" in result.stdout
    assert key_identifier(ca.issuing).hex(":").upper() in result.stdout

    crl_pem = _pem_crl(tmp_path, "issuing-crl.pem", crl.read_bytes())
    verify = _openssl(
        "verify", "-crl_check", "-CRLfile", crl_pem, "-CAfile", pem["root"], "-untrusted", pem["issuing"],
        pem["leaf"],
    )  # fmt: skip
    assert verify.returncode != 0
    assert "certificate revoked" in verify.stdout + verify.stderr


def test_openssl_accepts_a_whole_chain_checked_against_both_crls(ca, registry, leaf, pem, tmp_path):
    crls = tmp_path / "crls.pem"
    crls.write_bytes(
        _pem_crl(tmp_path, "i.pem", ca.issuing_crl(registry)).read_bytes()
        + _pem_crl(tmp_path, "r.pem", ca.root_crl(registry)).read_bytes()
    )
    verify = _openssl(
        "verify", "-crl_check_all", "-CRLfile", crls, "-CAfile", pem["root"], "-untrusted", pem["issuing"],
        pem["leaf"],
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"{pem['leaf']}: OK" in verify.stdout


def test_each_crl_lists_only_its_own_cas_revocations(ca: ThrowawayCA, registry, leaf):
    registry.revoke(leaf.serial_number)
    registry.revoke(ca.tsa_certificate.serial_number, reason="cessation_of_operation")
    issuing = x509.load_der_x509_crl(ca.issuing_crl(registry))
    root = x509.load_der_x509_crl(ca.root_crl(registry))
    assert [r.serial_number for r in issuing] == [leaf.serial_number]
    assert [r.serial_number for r in root] == [ca.tsa_certificate.serial_number]
    # RFC 5280 §5.3.1: "unspecified" is said by leaving the reason out.
    with pytest.raises(x509.ExtensionNotFound):
        issuing[0].extensions.get_extension_for_class(x509.CRLReason)
    reason = root[0].extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.cessation_of_operation
    assert root.is_signature_valid(ca.root.public_key())
    assert issuing.is_signature_valid(ca.issuing.public_key())


def test_a_crl_leaves_out_revocations_dated_after_it_and_keeps_expired_ones(ca: ThrowawayCA, leaf):
    registry = MemoryRegistry()
    registry.add(leaf, kind="signature")
    registry.revoke(leaf.serial_number, at=NOW)
    before = build_crl(
        ca.issuing, ca.issuing_key, registry.revoked(), number=1,
        this_update=NOW - dt.timedelta(seconds=1), next_update=NOW + dt.timedelta(days=1),
    )  # fmt: skip
    years_later = NOW + dt.timedelta(days=3650)
    after = build_crl(
        ca.issuing, ca.issuing_key, registry.revoked(), number=2,
        this_update=years_later, next_update=years_later + dt.timedelta(days=1),
    )  # fmt: skip
    assert list(x509.load_der_x509_crl(before)) == []
    crl = x509.load_der_x509_crl(after)
    assert [r.serial_number for r in crl] == [leaf.serial_number]
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    expired_certs_on_crl = asn1_crl.CertificateList.load(after)["tbs_cert_list"]["crl_extensions"][2]
    assert expired_certs_on_crl["extn_id"].dotted == "2.5.29.60"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"this_update": NOW, "next_update": NOW}, "must come after"),
        ({"this_update": NOW, "next_update": NOW + dt.timedelta(days=1), "number": -1}, "cRLNumber"),
        ({"this_update": NOW.replace(tzinfo=None), "next_update": NOW + dt.timedelta(days=1)}, "aware"),
    ],
)
def test_build_crl_refuses_wrong_input(ca: ThrowawayCA, options, message):
    with pytest.raises(PKIError, match=message):
        build_crl(ca.issuing, ca.issuing_key, [], **{"number": 1, **options})


def test_build_crl_refuses_a_key_that_is_not_the_cas(ca: ThrowawayCA):
    with pytest.raises(PKIError, match="does not belong"):
        build_crl(
            ca.root, ca.issuing_key, [], number=1, this_update=NOW, next_update=NOW + dt.timedelta(days=1)
        )


# -- pyHanko's certvalidator ------------------------------------------------------------


def _validate(leaf: x509.Certificate, ca: ThrowawayCA, *, ocsps=(), crls=()) -> None:
    context = ValidationContext(
        trust_roots=[_asn1(ca.root)],
        other_certs=[_asn1(ca.issuing)],
        ocsps=list(ocsps),
        crls=list(crls),
        allow_fetching=False,
        revocation_mode="require",
    )
    validator = CertificateValidator(_asn1(leaf), validation_context=context)
    asyncio.run(validator.async_validate_usage({"digital_signature", "non_repudiation"}))


def test_certvalidator_requires_and_accepts_our_ocsp_response_and_root_crl(ca, registry, leaf):
    responder = ca.ocsp_responder(registry)
    _validate(leaf, ca, ocsps=[responder.response_for(leaf)], crls=[ca.root_crl(registry)])
    with pytest.raises(Exception, match=r"revocation|revoked|OCSP|CRL"):
        _validate(leaf, ca, crls=[ca.root_crl(registry)])  # required: without the leaf's status it fails


def test_certvalidator_sees_a_revocation_in_our_ocsp_response(ca, registry, leaf):
    registry.revoke(leaf.serial_number, reason="key_compromise", at=dt.datetime.now(dt.UTC))
    responder = ca.ocsp_responder(registry)
    with pytest.raises(RevokedError, match="compromised key"):
        _validate(leaf, ca, ocsps=[responder.response_for(leaf)], crls=[ca.root_crl(registry)])


def test_certvalidator_accepts_our_crls_alone(ca, registry, leaf):
    _validate(leaf, ca, crls=[ca.issuing_crl(registry), ca.root_crl(registry)])
    registry.revoke(leaf.serial_number, reason="affiliation_changed")
    with pytest.raises(RevokedError, match="affiliation"):
        _validate(leaf, ca, crls=[ca.issuing_crl(registry), ca.root_crl(registry)])


def test_certvalidator_fetches_status_from_the_published_addresses(server, responder, registry, leaf, ca):
    async def validate() -> None:
        backend = AIOHttpFetcherBackend()
        try:
            context = ValidationContext(
                trust_roots=[_asn1(ca.root)],
                other_certs=[_asn1(ca.issuing)],
                allow_fetching=True,
                fetcher_backend=backend,
                revocation_mode="require",
            )
            validator = CertificateValidator(_asn1(leaf), validation_context=context)
            await validator.async_validate_usage({"digital_signature"})
        finally:
            await backend.close()

    asyncio.run(validate())
    # Each status from the OCSP responder the certificate's AIA names: the leaf's from the
    # issuing CA's, the issuing CA's from the root's.
    assert ("POST", "/esign-pki/ocsp") in server.requests
    assert ("POST", "/esign-pki/root-ocsp") in server.requests
    registry.revoke(leaf.serial_number, reason="privilege_withdrawn")
    with pytest.raises(RevokedError, match="privilege"):
        asyncio.run(validate())


# -- long-term validation of PAdES signatures ----------------------------------------------


def _simple_signer(ca: ThrowawayCA, common_name: str, registry: MemoryRegistry):
    certificate, key = ca.issue(common_name)
    registry.add(certificate, kind="signature")
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = signers.SimpleSigner(
        signing_cert=_asn1(certificate),
        signing_key=asn1_keys.PrivateKeyInfo.load(pkcs8),
        cert_registry=SimpleCertificateStore.from_certs([_asn1(ca.issuing), _asn1(ca.root)]),
    )
    return certificate, signer


@pytest.fixture(scope="module")
def long_lived_ca(server: TrustServer) -> ThrowawayCA:
    # pyHanko 0.38's AdES validation gives CERTIFICATE_CHAIN_GENERAL_FAILURE once an
    # intermediate CA has expired, whatever the proofs of existence; to see our OCSP
    # responses and CRLs at work ten years on, the issuing CA here outlives that.
    return ThrowawayCA.create(base_url=server.url, issuing_days=15 * 365)


def _sign_ltv(
    ca: ThrowawayCA, server: TrustServer, pdf: bytes, *, lta: bool
) -> tuple[bytes, x509.Certificate]:
    registry = ca.registry()
    server.tsa = ca.tsa()
    leaf, signer = _simple_signer(ca, "Agda Andersson", registry)
    responder = ca.ocsp_responder(registry)
    # What the add-on hands pyHanko at signing time: our own answers, nothing fetched.
    context = ValidationContext(
        trust_roots=[_asn1(ca.root)],
        ocsps=[responder.response_for(leaf)],
        crls=[ca.root_crl(registry)],
        allow_fetching=False,
    )
    meta = signers.PdfSignatureMetadata(
        field_name="Signature1",
        subfilter=fields.SigSeedSubFilter.PADES,
        embed_validation_info=True,
        validation_context=context,
        use_pades_lta=lta,
    )
    output = io.BytesIO()
    signers.PdfSigner(
        meta, signer=signer, timestamper=HTTPTimeStamper(f"{server.url}/esign-pki/tsa")
    ).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), output=output)
    return output.getvalue(), leaf


def test_a_b_lt_signature_carries_our_revocation_data_and_validates_offline(
    long_lived_ca: ThrowawayCA, server: TrustServer, documents: TestDocuments
):
    signed, leaf = _sign_ltv(long_lived_ca, server, documents.data("reportlab"), lta=False)
    reader = PdfFileReader(io.BytesIO(signed))
    dss = DocumentSecurityStore.read_dss(reader)
    ocsp_responses = [ocsp.OCSPResponse.load(o.get_object().data) for o in dss.ocsps]
    crls = [asn1_crl.CertificateList.load(c.get_object().data) for c in dss.crls]
    assert [_single(o.dump())[1]["cert_id"]["serial_number"].native for o in ocsp_responses] == [
        leaf.serial_number
    ]
    assert [c.issuer.dump() for c in crls] == [_asn1(long_lived_ca.root).subject.dump()]

    embedded = reader.embedded_signatures[0]
    token = signature_timestamp_token(embedded)
    signed_at = token["content"]["encap_content_info"]["content"].parsed["gen_time"].native

    # Validation at the moment the signature timestamp proves, revocation data required
    # and taken from the file only (what pyHanko's former PADES_LT mode did). Everything
    # comes from the DSS: no fetching, no other source of revocation data.
    def context() -> ValidationContext:
        return ValidationContext(
            trust_roots=[_asn1(long_lived_ca.root)],
            ocsps=[o.dump() for o in ocsp_responses],
            crls=[c.dump() for c in crls],
            moment=signed_at,
            allow_fetching=False,
            revocation_mode="require",
        )

    status = validate_pdf_signature(
        embedded, signer_validation_context=context(), ts_validation_context=context()
    )
    assert status.bottom_line, status.pretty_print_details()
    assert status.timestamp_validity.trusted
    assert leaf.not_valid_before_utc <= signed_at <= leaf.not_valid_after_utc


@pytest.mark.parametrize("days_later", [10, 3653])
@pytest.mark.parametrize("current_status", ["root OCSP", "root CRL"])
def test_a_b_lta_signature_validates_offline_years_after_the_certificate_expired(
    long_lived_ca: ThrowawayCA, server: TrustServer, documents: TestDocuments, days_later, current_status
):
    signed, leaf = _sign_ltv(long_lived_ca, server, documents.data("reportlab"), lta=True)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=days_later)
    assert leaf.not_valid_after_utc < later
    # A verifier then fetches the current status of the TSA certificate behind the
    # document timestamp (the root's OCSP answer, or its CRL); handed in here.
    registry = long_lived_ca.registry()
    answered_at = later - dt.timedelta(hours=1)
    if current_status == "root OCSP":
        responder = long_lived_ca.root_ocsp_responder(registry, clock=lambda: answered_at)
        response = ocsp.OCSPResponse.load(responder.response_for(long_lived_ca.tsa_certificate))
        knowledge = LocalKnowledge(known_ocsps=[OCSPContainer(response)])
    else:
        crl = long_lived_ca.root_crl(registry, now=answered_at)
        knowledge = LocalKnowledge(known_crls=[CRLContainer(asn1_crl.CertificateList.load(crl))])
    policy = CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build([_asn1(long_lived_ca.root)]),
        revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO),
    )
    spec = PdfSignatureValidationSpec(
        SignatureValidationSpec(
            cert_validation_policy=policy,
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY
            ),
            local_knowledge=knowledge,
        )
    )
    timing = ValidationTimingInfo(
        validation_time=later, best_signature_time=later, point_in_time_validation=True
    )
    embedded = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
    result = asyncio.run(ades_lta_validation(embedded, spec, timing_info=timing))
    assert result.ades_subindic.status.name == "PASSED", result.failure_msg
    assert result.api_status.bottom_line
