"""The BankID RP API v6.0 client against the project's own test server, on real sockets.

A tester's browser is played by ``requests`` against the tester page, exactly
the forms a person would submit.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.etree import ElementTree

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from esign.plone.errors import BankIDError
from esign.plone.identity import rfa
from esign.plone.identity.bankid import (
    BankIDClient,
    BankIDConfig,
    Completion,
    OrderStart,
    autostart_url,
    qr_data,
    verified_identity,
)
from esign.plone.signing.values import LOA3
from esign.plone.testservers.bankid import BankIDTestServer

ANNA = "191212121212"
BERTIL = "194911172296"
DSIG = "{http://www.w3.org/2000/09/xmldsig#}"


def open_order(server: BankIDTestServer, order_ref: str) -> requests.Response:
    return requests.get(f"{server.page_url}orders/{order_ref}", timeout=5)


def approve(server: BankIDTestServer, order_ref: str, **form: str) -> requests.Response:
    return requests.post(f"{server.page_url}orders/{order_ref}/approve", data=form, timeout=5)


def cancel_on_page(server: BankIDTestServer, order_ref: str) -> requests.Response:
    return requests.post(f"{server.page_url}orders/{order_ref}/cancel", data={}, timeout=5)


def api_post(server: BankIDTestServer, endpoint: str, **kwargs) -> requests.Response:
    paths = server.paths
    return requests.post(
        f"{server.api_url}/{endpoint}",
        cert=(str(paths["rp_cert"]), str(paths["rp_key"])),
        verify=str(paths["ca"]),
        timeout=5,
        **kwargs,
    )


def test_an_identification_approved_as_anna_completes_with_her_name_and_a_good_ocsp_response(
    bankid: BankIDClient, bankid_server: BankIDTestServer
):
    order = bankid.auth(end_user_ip="192.0.2.10")
    assert approve(bankid_server, order.order_ref, person=ANNA).status_code == 200

    result = bankid.collect(order.order_ref)

    assert (result.status, result.hint_code) == ("complete", "")
    completion = result.completion
    assert completion is not None
    assert (completion.personal_number, completion.name) == (ANNA, "Anna Andersson")
    assert (completion.given_name, completion.surname) == ("Anna", "Andersson")
    assert completion.ip_address == "192.0.2.10"
    assert completion.step_up is False
    assert dt.date.fromisoformat(completion.bankid_issue_date) < dt.date.today()

    ca = x509.load_pem_x509_certificate(bankid_server.paths["ca"].read_bytes())
    response = ocsp.load_der_ocsp_response(base64.b64decode(completion.ocsp_response))
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert response.issuer_key_hash == x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest
    ca.public_key().verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    person_cert = _certificates(completion)[0]
    assert response.serial_number == person_cert.serial_number
    assert person_cert.issuer == ca.subject
    assert person_cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == ANNA


def _certificates(completion: Completion) -> list[x509.Certificate]:
    document = ElementTree.fromstring(base64.b64decode(completion.signature))  # noqa: S314 - our test server
    return [
        x509.load_der_x509_certificate(base64.b64decode(element.text or ""))
        for element in document.iter(f"{DSIG}X509Certificate")
    ]


def test_a_signature_shows_its_text_on_the_tester_page_and_comes_back_signed_over_that_text(
    bankid: BankIDClient, bankid_server: BankIDTestServer
):
    order = bankid.sign(
        end_user_ip="127.0.0.1", user_visible_data="Avtal", user_non_visible_data=b"\x00digest"
    )

    page = requests.get(bankid_server.page_url, timeout=5)
    assert "BankID (test)" in page.text
    assert "Underskrift" in page.text
    assert "<pre>Avtal</pre>" in page.text
    listed = requests.get(f"{bankid_server.page_url}orders.json", timeout=5).json()
    assert [(o["orderRef"], o["type"], o["visibleText"]) for o in listed] == [
        (order.order_ref, "sign", "Avtal")
    ]

    approve(bankid_server, order.order_ref, person=BERTIL)
    completion = bankid.collect(order.order_ref).completion
    assert completion is not None
    assert completion.name == "Bertil Berg"

    document = base64.b64decode(completion.signature)
    tree = ElementTree.fromstring(document)  # noqa: S314 - our test server
    signed = tree.find(f"{DSIG}Object/{{http://www.bankid.com/signature/v1.0.0/types}}bankIdSignedData")
    assert signed is not None
    assert signed.findtext("{http://www.bankid.com/signature/v1.0.0/types}usrVisibleData") == "QXZ0YWw="
    assert base64.b64decode(signed.findtext("{*}usrNonVisibleData") or "") == b"\x00digest"
    # The digest covers the signed data's bytes, the signature the SignedInfo's bytes.
    signed_bytes = re.search(rb"<bankIdSignedData .*</bankIdSignedData>", document).group(0)
    digest = tree.findtext(f"{DSIG}SignedInfo/{DSIG}Reference/{DSIG}DigestValue")
    assert base64.b64decode(digest or "") == hashlib.sha256(signed_bytes).digest()
    signed_info = re.search(rb"<SignedInfo .*</SignedInfo>", document).group(0)
    raw = base64.b64decode(tree.findtext(f"{DSIG}SignatureValue") or "")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    person_cert, ca = _certificates(completion)
    person_cert.public_key().verify(der, signed_info, ec.ECDSA(hashes.SHA256()))
    ca.public_key().verify(
        person_cert.signature, person_cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256())
    )
    assert person_cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == BERTIL


def test_collect_is_outstanding_until_the_tester_opens_the_order_and_then_waits_for_the_security_code(
    bankid: BankIDClient, bankid_server: BankIDTestServer
):
    order = bankid.auth(end_user_ip="127.0.0.1")

    before = bankid.collect(order.order_ref)
    assert (before.status, before.hint_code) == ("pending", "outstandingTransaction")
    assert rfa.user_message(before.status, before.hint_code, flow="qr") == "Starta BankID-appen."
    assert (
        rfa.user_message(before.status, before.hint_code, flow="same_device")
        == "Försöker starta BankID-appen."
    )

    page = open_order(bankid_server, order.order_ref)
    assert page.status_code == 200
    assert "Godkänn" in page.text and "Avbryt" in page.text

    after = bankid.collect(order.order_ref)
    assert (after.status, after.hint_code) == ("pending", "userSign")
    assert rfa.user_message(after.status, after.hint_code) == (
        "Skriv in din säkerhetskod i BankID-appen och välj Legitimera eller Skriv under."
    )


def test_cancelling_in_the_app_fails_the_order_with_user_cancel(
    bankid: BankIDClient, bankid_server: BankIDTestServer
):
    order = bankid.auth(end_user_ip="127.0.0.1")

    assert cancel_on_page(bankid_server, order.order_ref).status_code == 200

    result = bankid.collect(order.order_ref)
    assert (result.status, result.hint_code, result.completion) == ("failed", "userCancel", None)
    assert rfa.user_message(result.status, result.hint_code) == "Åtgärden avbruten."
    assert requests.get(f"{bankid_server.page_url}orders.json", timeout=5).json() == []
    assert approve(bankid_server, order.order_ref, person=ANNA).status_code == 409


def test_after_the_relying_party_cancels_bankid_no_longer_knows_the_order(
    bankid: BankIDClient, bankid_server: BankIDTestServer
):
    order = bankid.auth(end_user_ip="127.0.0.1")

    bankid.cancel(order.order_ref)

    with pytest.raises(BankIDError) as raised:
        bankid.collect(order.order_ref)
    assert (raised.value.error_code, raised.value.details) == ("invalidParameters", "No such order")
    assert raised.value.message == "Okänt fel. Försök igen."
    assert open_order(bankid_server, order.order_ref).status_code == 404


def test_an_order_without_the_users_ip_address_is_refused_as_invalid_parameters(
    bankid: BankIDClient, bankid_server: BankIDTestServer
):
    with pytest.raises(BankIDError) as raised:
        bankid.auth(end_user_ip="")
    assert raised.value.error_code == "invalidParameters"
    assert raised.value.details == "Invalid endUserIp"

    missing = api_post(bankid_server, "sign", json={"userVisibleData": "QXZ0YWw="})
    assert missing.status_code == 400
    assert missing.json() == {"errorCode": "invalidParameters", "details": "Invalid endUserIp"}


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"endUserIp": "not an ip"}, "Invalid endUserIp"),
        (
            {"endUserIp": "127.0.0.1", "requirement": {"personalNumber": "1212121212"}},
            "Invalid personalNumber",
        ),
        ({"endUserIp": "127.0.0.1", "userVisibleData": "inte base64!"}, "Invalid userVisibleData"),
        ({"endUserIp": "127.0.0.1", "userVisibleData": "QUFB" * 10_001}, "Invalid userVisibleData"),
        ({"endUserIp": "127.0.0.1", "userNonVisibleData": "QUFB" * 50_001}, "Invalid userNonVisibleData"),
    ],
)
def test_the_api_refuses_what_bankid_refuses(bankid_server: BankIDTestServer, body: dict, details: str):
    answer = api_post(bankid_server, "auth", json=body)

    assert answer.status_code == 400
    assert answer.json() == {"errorCode": "invalidParameters", "details": details}


def test_a_sign_order_needs_visible_data_and_json_and_post(bankid_server: BankIDTestServer):
    assert api_post(bankid_server, "sign", json={"endUserIp": "127.0.0.1"}).json()["details"] == (
        "Invalid userVisibleData"
    )
    form = api_post(bankid_server, "auth", data={"endUserIp": "127.0.0.1"})
    assert (form.status_code, form.json()["errorCode"]) == (415, "unsupportedMediaType")
    paths = bankid_server.paths
    get = requests.get(
        f"{bankid_server.api_url}/collect",
        cert=(str(paths["rp_cert"]), str(paths["rp_key"])),
        verify=str(paths["ca"]),
        timeout=5,
    )
    assert (get.status_code, get.json()["errorCode"]) == (405, "methodNotAllowed")


def test_a_phone_order_names_the_person_and_who_called(bankid_server: BankIDTestServer):
    assert api_post(bankid_server, "phone/auth", json={"personalNumber": ANNA}).json()["details"] == (
        "Invalid callInitiator"
    )

    started = api_post(
        bankid_server,
        "phone/sign",
        json={"personalNumber": ANNA, "callInitiator": "RP", "userVisibleData": "QXZ0YWw="},
    ).json()

    assert list(started) == ["orderRef"]
    listed = requests.get(f"{bankid_server.page_url}orders.json", timeout=5).json()
    assert [(o["type"], o["phone"], o["personalNumber"]) for o in listed] == [("sign", True, ANNA)]


def test_a_second_order_for_the_same_person_fails_both_orders(bankid: BankIDClient):
    first = bankid.sign(end_user_ip="127.0.0.1", user_visible_data="Avtal", personal_number=ANNA)

    with pytest.raises(BankIDError) as raised:
        bankid.auth(end_user_ip="127.0.0.1", personal_number=ANNA)

    assert raised.value.error_code == "alreadyInProgress"
    assert raised.value.message == (
        "En identifiering eller underskrift för det här personnumret är redan påbörjad. Försök igen."
    )
    old = bankid.collect(first.order_ref)
    assert (old.status, old.hint_code) == ("failed", "cancelled")
    assert rfa.user_message(old.status, old.hint_code) == "Åtgärden avbruten. Försök igen."


def test_an_order_for_one_person_cannot_be_approved_as_another(
    bankid: BankIDClient, bankid_server: BankIDTestServer
):
    order = bankid.auth(end_user_ip="127.0.0.1", personal_number=BERTIL)
    assert f"Kräver personnummer <strong>{BERTIL}</strong>" in open_order(bankid_server, order.order_ref).text

    refused = approve(bankid_server, order.order_ref, person=ANNA)
    assert refused.status_code == 403
    assert f"Ordern kan bara godkännas av personnummer {BERTIL}." in refused.text
    assert bankid.collect(order.order_ref).status == "pending"

    approve(bankid_server, order.order_ref, personal_number=BERTIL, name="Bertil Berg")
    completion = bankid.collect(order.order_ref).completion
    assert completion is not None
    assert completion.personal_number == BERTIL


def test_the_tester_can_approve_as_any_person_typed_in(bankid: BankIDClient, bankid_server: BankIDTestServer):
    order = bankid.auth(end_user_ip="127.0.0.1")

    assert (
        approve(bankid_server, order.order_ref, personal_number="12345", name="Kalle Anka").status_code == 400
    )
    approve(
        bankid_server, order.order_ref, person=ANNA, personal_number="200001012384", name="Karl Erik Ström"
    )

    completion = bankid.collect(order.order_ref).completion
    assert completion is not None
    assert (completion.personal_number, completion.given_name, completion.surname) == (
        "200001012384",
        "Karl Erik",
        "Ström",
    )


def test_an_order_nobody_answers_expires(bankid_dir: Path):
    with BankIDTestServer(bankid_dir, order_lifetime=0.3) as server:
        paths = server.paths
        client = BankIDClient(
            BankIDConfig(server.api_url, str(paths["rp_cert"]), str(paths["rp_key"]), str(paths["ca"]))
        )
        order = client.auth(end_user_ip="127.0.0.1")
        time.sleep(0.5)

        result = client.collect(order.order_ref)

    assert (result.status, result.hint_code) == ("failed", "expiredTransaction")
    assert rfa.user_message(result.status, result.hint_code).startswith("BankID-appen svarar inte.")


def test_a_client_without_the_rp_certificate_cannot_connect(bankid_server: BankIDTestServer):
    # TLS 1.3 reports the missing certificate as an alert or as a closed connection.
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(
            f"{bankid_server.api_url}/auth",
            json={"endUserIp": "127.0.0.1"},
            verify=str(bankid_server.paths["ca"]),
            timeout=5,
        )

    assert api_post(bankid_server, "auth", json={"endUserIp": "127.0.0.1"}).status_code == 200


def test_a_client_that_trusts_another_ca_refuses_the_server(bankid_config: BankIDConfig):
    system_ca = requests.certs.where()
    client = BankIDClient(BankIDConfig(**{**bankid_config.__dict__, "ca_path": system_ca}))

    with pytest.raises(BankIDError) as raised:
        client.auth(end_user_ip="127.0.0.1")

    assert raised.value.error_code == "unreachable"
    assert raised.value.message == "Internt tekniskt fel. Försök igen."


def test_a_server_that_is_down_is_unreachable(bankid_config: BankIDConfig, bankid_server: BankIDTestServer):
    bankid_server.stop()
    client = BankIDClient(bankid_config)

    with pytest.raises(BankIDError) as raised:
        client.collect("0f0e7a5c-0000-4000-8000-000000000000")

    assert raised.value.error_code == "unreachable"


def test_an_answer_that_is_not_json_is_an_error(bankid_config: BankIDConfig):
    class NotJSON(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"<html/>\r\n")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotJSON)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/rp/v6.0/"
        client = BankIDClient(BankIDConfig(**{**bankid_config.__dict__, "url": url}))
        with pytest.raises(BankIDError) as raised:
            client.collect("0f0e7a5c-0000-4000-8000-000000000000")
    finally:
        server.shutdown()
        server.server_close()
    assert raised.value.error_code == "invalidResponse"


def test_qr_data_is_the_token_the_seconds_and_an_hmac_of_the_seconds():
    # openssl: echo -n 7 | openssl dgst -sha256 -hmac secret-123
    expected = "8009aa875ce79b7a9838b5b9dcbf8ac72a063fd670ce4e7348dd3e0c87955b6c"

    assert qr_data("token-abc", "secret-123", 7) == f"bankid.token-abc.7.{expected}"
    order = OrderStart("ref", "auto", "token-abc", "secret-123", started_at=1000.0)
    assert order.qr_data(now=1007.9) == f"bankid.token-abc.7.{expected}"
    assert order.qr_data(now=1000.2).startswith("bankid.token-abc.0.")


def test_the_autostart_link_carries_the_token_and_an_encoded_redirect():
    assert autostart_url("46f6aa68-b0a4-4c3b-b2b2-5b2ef4ac0b5e") == (
        "bankid:///?autostarttoken=46f6aa68-b0a4-4c3b-b2b2-5b2ef4ac0b5e&redirect=null"
    )
    assert autostart_url("t", redirect="https://e.se/a?b=1") == (
        "bankid:///?autostarttoken=t&redirect=https%3A%2F%2Fe.se%2Fa%3Fb%3D1"
    )


def test_a_completed_order_becomes_a_verified_identity_for_the_signing_engine(
    bankid: BankIDClient, bankid_server: BankIDTestServer
):
    order = bankid.auth(end_user_ip="127.0.0.1")
    approve(bankid_server, order.order_ref, person=ANNA)
    completion = bankid.collect(order.order_ref).completion
    assert completion is not None
    at = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)

    identity = verified_identity(
        completion, order_ref=order.order_ref, provider=bankid_server.api_url, authenticated_at=at
    )

    assert identity.common_name == "Anna Andersson"
    assert identity.subject_serial_number == f"PNOSE-{ANNA}"
    assert identity.context.method == "bankid"
    assert identity.context.level_of_assurance == LOA3
    assert identity.context.transaction_ref == order.order_ref
    assert identity.context.authenticated_at == at
    assert ANNA not in repr(completion).replace(completion.personal_number, "", 1)


@pytest.mark.parametrize(
    ("status", "hint_code", "flow", "expected"),
    [
        ("pending", "outstandingTransaction", "qr", "RFA1"),
        ("pending", "outstandingTransaction", "same_device", "RFA13"),
        ("pending", "noClient", "qr", "RFA1"),
        ("pending", "userSign", "qr", "RFA9"),
        ("pending", "userMrtd", "qr", "RFA23"),
        ("pending", "somethingNew", "qr", "RFA21"),
        ("failed", "userCancel", "qr", "RFA6"),
        ("failed", "cancelled", "qr", "RFA3"),
        ("failed", "expiredTransaction", "qr", "RFA8"),
        ("failed", "certificateErr", "qr", "RFA16"),
        ("failed", "startFailed", "qr", "RFA17B"),
        ("failed", "startFailed", "same_device", "RFA17A"),
        ("failed", "somethingNew", "qr", "RFA22"),
        ("complete", "", "qr", None),
    ],
)
def test_each_collect_answer_has_bankids_recommended_message(status, hint_code, flow, expected):
    assert rfa.rfa_id(status, hint_code, flow=flow) == expected


def test_the_recommended_messages_read_as_bankid_writes_them():
    assert rfa.message("RFA1") == "Starta BankID-appen."
    assert rfa.message("RFA1", "en") == "Start your BankID app."
    assert rfa.message("RFA21") == "Identifiering eller underskrift pågår."
    assert rfa.message("RFA22") == "Okänt fel. Försök igen."
    assert rfa.message("RFA17A").endswith("https://install.bankid.com.")
    assert rfa.error_message("maintenance") == "Internt tekniskt fel. Försök igen."
    assert rfa.user_message("complete", "") == ""
    assert all(m.sv and m.en for m in rfa.MESSAGES.values())


def test_the_configuration_comes_from_the_environment_over_the_defaults(monkeypatch: pytest.MonkeyPatch):
    for name in ("URL", "CERT", "KEY", "CA"):
        monkeypatch.delenv(f"ESIGN_BANKID_{name}", raising=False)
    assert BankIDConfig.from_env() is None
    defaults = {"url": "https://a.example/rp/v6.0", "cert_path": "c", "key_path": "k", "ca_path": "ca"}
    monkeypatch.setenv("ESIGN_BANKID_URL", "https://localhost:18443/rp/v6.0")

    config = BankIDConfig.from_env(defaults)

    assert config == BankIDConfig("https://localhost:18443/rp/v6.0", "c", "k", "ca")
    with pytest.raises(BankIDError) as raised:
        BankIDConfig.from_env({"cert_path": "c"})
    assert raised.value.error_code == "configuration"
    assert "ESIGN_BANKID_KEY" in raised.value.details


@pytest.mark.parametrize(
    ("value", "timeout"),
    [
        ("", 10.0),
        ("3.5", 3.5),
        ("120", 120.0),
        ("0", 10.0),
        ("-1", 10.0),
        ("121", 10.0),
        ("ten", 10.0),
        ("nan", 10.0),
    ],
)
def test_esign_bankid_timeout_sets_the_wait_and_a_bad_value_keeps_the_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str, timeout: float
):
    monkeypatch.setenv("ESIGN_BANKID_TIMEOUT", value)
    defaults = {"url": "https://a.example/rp/v6.0", "cert_path": "c", "key_path": "k", "ca_path": "ca"}
    for name in ("URL", "CERT", "KEY", "CA"):
        monkeypatch.delenv(f"ESIGN_BANKID_{name}", raising=False)

    assert BankIDConfig.from_env(defaults).timeout == timeout
    assert ("ESIGN_BANKID_TIMEOUT" in caplog.text) == (value not in ("", "3.5", "120"))


def test_the_console_script_serves_until_terminated(tmp_path: Path):
    script = Path(sys.executable).parent / "esign-bankid-test-server"
    process = subprocess.Popen(
        [str(script), "--dir", str(tmp_path / "bankid"), "--api-port", "0", "--page-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        assert process.stdout is not None
        while not any("ESIGN_BANKID_CA=" in line for line in lines):
            line = process.stdout.readline()
            assert line, "the server stopped before printing its settings"
            lines.append(line)
        settings = dict(re.findall(r"export (ESIGN_BANKID_\w+)=(\S+)", "".join(lines)))
        config = BankIDConfig(
            settings["ESIGN_BANKID_URL"],
            settings["ESIGN_BANKID_CERT"],
            settings["ESIGN_BANKID_KEY"],
            settings["ESIGN_BANKID_CA"],
        )

        order = BankIDClient(config).auth(end_user_ip="127.0.0.1")

        assert BankIDClient(config).collect(order.order_ref).hint_code == "outstandingTransaction"
        assert (tmp_path / "bankid" / "rp-key.pem").stat().st_mode & 0o077 == 0
    finally:
        process.terminate()
        returncode = process.wait(timeout=10)
    assert returncode == 0
