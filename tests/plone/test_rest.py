"""The REST API alone carries a case from creation to a validated signature, over real HTTP.

Every exchange worth showing is recorded into ``test-output/rest/`` (``$ESIGN_RECORD_REST``; the
REST examples in ``docs/rest/`` are refreshed with ``ESIGN_RECORD_REST=docs/rest``; volatile ids
replaced by placeholders); the README's "REST API" section is made from those files.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from pathlib import Path

import pytest
import requests
import transaction
from plone import api

from esign.plone import api as esign
from esign.plone.testservers.bankid import BankIDTestServer
from helpers.journey import BankIDTester
from helpers.site import ANNA, BERTIL
from helpers.validators import pdfsig

OFFICER = ("officer", "officer-secret-1")
# test-output/ by default; `ESIGN_RECORD_REST=docs/rest make test` refreshes the README's examples.
DOCS = Path(
    os.environ.get("ESIGN_RECORD_REST") or Path(__file__).resolve().parents[2] / "test-output" / "rest"
).resolve()


@pytest.fixture(scope="module")
def bankid_server(tmp_path_factory):
    server = BankIDTestServer(tmp_path_factory.mktemp("bankid-rest")).start()
    saved = {name: os.environ.get(name) for name in server.environment()}
    os.environ.update(server.environment())
    yield server
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture()
def tester(bankid_server):
    return BankIDTester(bankid_server.page_url)


@pytest.fixture()
def site(functional_portal, bankid_server):
    user = api.user.create(email="officer@regionen.se", username="officer", password=OFFICER[1])
    api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    api.user.create(email="other@regionen.se", username="other", password="other-secret-1")
    transaction.commit()
    return functional_portal


# -- recording --------------------------------------------------------------------------------


class Recorder:
    """Writes request/response pairs as HTTP messages, with volatile values made placeholders."""

    def __init__(self, portal_url: str) -> None:
        self.portal_url = portal_url
        self.names: dict[str, str] = {}

    def name(self, value: str, placeholder: str) -> None:
        if value:
            self.names[value] = placeholder

    def clean(self, text: str) -> str:
        for value, placeholder in sorted(self.names.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(value, placeholder)
        text = text.replace(self.portal_url, "http://localhost:8080/Plone")
        text = re.sub(
            r'"bankid\.[0-9a-f-]+\.\d+\.[0-9a-f]+"', '"bankid.<qrStartToken>.<seconds>.<qrAuthCode>"', text
        )
        text = re.sub(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?", "<time>", text)
        text = re.sub(r"\b[0-9a-f]{64}\b", "<sha256>", text)
        text = re.sub(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>", text)
        return re.sub(r"\b[0-9a-f]{32}\b", "<uid>", text)

    def __call__(self, name: str, response: requests.Response, *, keep: tuple[str, ...] = ()) -> None:
        sent = response.request
        path = sent.url.replace(self.portal_url, "/Plone")
        lines = [f"{sent.method} {path} HTTP/1.1"]
        for header in ("Accept", "Authorization", "Content-Type", "X-CSRF-Token"):
            if header in sent.headers:
                value = sent.headers[header]
                value = "Basic b2ZmaWNlcjpvZmZpY2VyLXNlY3JldC0x" if header == "Authorization" else value
                lines.append(f"{header}: {value}")
        cookies = re.findall(r"(__esign_\w+)=", sent.headers.get("Cookie", ""))
        if cookies:
            lines.append(
                "Cookie: " + "; ".join(f"{c}=<{c.strip('_').replace('esign_', '')}>" for c in cookies)
            )
        if sent.body:
            body = sent.body.decode() if isinstance(sent.body, bytes) else sent.body
            try:
                data = json.loads(body)
                if isinstance(data.get("document"), dict):
                    data["document"]["data"] = "JVBERi0xLjQK…"
                body = json.dumps(data, indent=2, ensure_ascii=False)
            except ValueError:
                pass
            lines += ["", body]
        lines += ["", f"HTTP/1.1 {response.status_code} {response.reason}"]
        for header in ("Content-Type", "X-CSRF-Token"):
            if header in response.headers:
                lines.append(f"{header}: {response.headers[header].split(';')[0]}")
        for cookie in sorted(set(re.findall(r"(__esign_\w+)=", response.headers.get("Set-Cookie", "")))):
            lines.append(f"Set-Cookie: {cookie}=…; Path=/Plone; HttpOnly")
        if response.headers.get("Content-Type", "").startswith("application/json"):
            data = response.json()
            if keep:
                data = {k: data[k] for k in keep if k in data}
            lines += ["", json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True)]
        elif response.content:
            lines += ["", f"<{len(response.content)} bytes of PDF>"]
        DOCS.mkdir(parents=True, exist_ok=True)
        message = self.clean("\n".join(lines)) + "\n"
        message = message.replace(response.headers.get("X-CSRF-Token", "\0"), "<csrf-token>")
        message = message.replace(sent.headers.get("X-CSRF-Token", "\0"), "<csrf-token>")
        (DOCS / f"{name}.http").write_text(message, encoding="utf-8")


# -- clients ------------------------------------------------------------------------------------


class Officer:
    def __init__(self, portal_url: str, auth=OFFICER) -> None:
        self.api = f"{portal_url}/++api++"
        self.http = requests.Session()
        self.http.auth = auth
        self.http.headers["Accept"] = "application/json"

    def get(self, path: str) -> requests.Response:
        return self.http.get(f"{self.api}/{path}", timeout=30)

    def post(self, path: str, body=None) -> requests.Response:
        return self.http.post(f"{self.api}/{path}", json=body, timeout=60)


class RestSigner:
    """A REST client of a signer: cookies for the session, the CSRF token echoed in a header."""

    def __init__(self, portal_url: str) -> None:
        self.api = f"{portal_url}/++api++"
        self.http = requests.Session()
        self.http.headers["Accept"] = "application/json"
        self.csrf = ""

    def _seen(self, response: requests.Response) -> requests.Response:
        self.csrf = response.headers.get("X-CSRF-Token", self.csrf)
        return response

    def get(self, name: str, **params) -> requests.Response:
        return self._seen(self.http.get(f"{self.api}/{name}", params=params, timeout=30))

    def post(self, name: str, body=None, *, csrf: str | None = None, data=None) -> requests.Response:
        headers = {"X-CSRF-Token": self.csrf if csrf is None else csrf}
        if data is not None:
            headers["Content-Type"] = "application/json"
        response = self.http.post(f"{self.api}/{name}", json=body, data=data, headers=headers, timeout=30)
        return self._seen(response)

    def collect(self, name: str, timeout: float = 15) -> list[requests.Response]:
        answers = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answers.append(self.get(name))
            if answers[-1].status_code != 200 or answers[-1].json()["status"] != "pending":
                return answers
            time.sleep(0.2)
        raise AssertionError("BankID order never finished")

    def login(self, tester: BankIDTester, person: dict, record=None) -> requests.Response:
        if not self.csrf:
            self.get("@esign-pending")  # any signer endpoint hands out the token
        started = self.post("@esign-login", {"mode": "qr"})
        assert started.status_code == 200, started.text
        order = tester.wait_for_order(kind="auth")
        waiting = self.get("@esign-login")
        assert waiting.json()["status"] == "pending" and waiting.json()["qr"].startswith("bankid.")
        tester.approve(order, personal_number=person["personal_number"])
        answers = self.collect("@esign-login")
        if record:
            record("signer-login-start", started)
            record("signer-login-collect-pending", waiting)
            record("signer-login-collect-complete", answers[-1])
        assert answers[-1].json()["status"] == "complete", answers[-1].text
        return answers[-1]


def create_case(officer: Officer, pdf: bytes, signers, title="Avtal om vårdtjänster") -> requests.Response:
    return officer.post(
        "",
        {
            "@type": "SigningCase",
            "title": title,
            "case_number": "RS 2025-0042",
            "information_class": "K2",
            "document": {
                "data": base64.b64encode(pdf).decode(),
                "encoding": "base64",
                "filename": "avtal.pdf",
                "content-type": "application/pdf",
            },
            "signers": [dict(s) for s in signers],
        },
    )


def sent_case_uid(officer: Officer, pdf: bytes, signers, title: str) -> str:
    created = create_case(officer, pdf, signers, title=title)
    assert created.status_code == 201, created.text
    path = created.json()["@id"].rsplit("/", 1)[1]
    assert officer.post(f"{path}/@workflow/send").status_code == 200
    return created.json()["UID"]


def refresh(portal, uid: str):
    portal._p_jar.sync()
    with api.env.adopt_roles(["Manager"]):
        return api.content.get(UID=uid)


def assert_error(response: requests.Response, status: int, kind: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Traceback" not in response.text and "traceback" not in response.text
    error = response.json()["error"]
    assert set(error) == {"type", "message"} and error["message"]
    if kind:
        assert error["type"] == kind, error
    return error


# -- tests ---------------------------------------------------------------------------------------


def test_a_case_goes_from_creation_to_a_validated_signature_through_the_rest_api_alone(
    site, tester, pdf_bytes, tmp_path
):
    record = Recorder(site.absolute_url())
    officer = Officer(site.absolute_url())

    created = create_case(officer, pdf_bytes, (ANNA,))
    assert created.status_code == 201, created.text
    uid = created.json()["UID"]
    record.name(uid, "<case-uid>")
    record.name(created.json()["@id"].rsplit("/", 1)[1], "avtal-om-vardtjanster")
    record("officer-create-case", created, keep=("@id", "@type", "UID", "title", "review_state"))
    case_path = created.json()["@id"].rsplit("/", 1)[1]

    sent = officer.post(f"{case_path}/@workflow/send")
    assert sent.status_code == 200 and sent.json()["review_state"] == "awaiting_signature"
    record("officer-send-case", sent)

    status = officer.get(f"{case_path}/@esign-status")
    assert status.status_code == 200
    signer = status.json()["signers"][0]
    record.name(signer["id"], "<signer-id>")
    assert status.json()["state"] == "awaiting_signature"
    assert signer["identifier"] == "19121212-****" and signer["status"] == "pending"
    assert ANNA["personal_number"] not in status.text
    record("officer-status-awaiting", status)

    anna = RestSigner(site.absolute_url())
    assert_error(anna.get("@esign-pending"), 401, "NotAuthenticated")
    record("signer-pending-without-session", anna.get("@esign-pending"))
    assert anna.csrf
    anna.login(tester, ANNA, record=record)

    pending = anna.get("@esign-pending")
    assert pending.status_code == 200
    assert [item["uid"] for item in pending.json()["items"]] == [uid]
    assert pending.json()["signer"]["identifier"] == "19121212-****"
    record("signer-pending", pending)

    started = anna.post("@esign-sign", {"case": uid, "mode": "qr"})
    assert started.status_code == 200, started.text
    assert started.json()["qr"].startswith("bankid.") and "secret" not in started.text.lower()
    record("signer-sign-start", started)
    order = tester.wait_for_order(kind="sign")
    assert "Avtal om vårdtjänster" in order["visibleText"]  # BankID shows what is signed
    tester.approve(order, personal_number=ANNA["personal_number"])
    collected = anna.collect("@esign-sign")[-1]
    assert collected.json()["status"] == "complete", collected.text
    record("signer-sign-collect-complete", collected)

    case = refresh(site, uid)
    assert esign.state_of(case) == "signed"
    assert case.signer_records[0].evidence["order_ref"] == order["orderRef"]
    record.name(case.signer_records[0].certificate_serial, "<certificate-serial>")

    status = officer.get(f"{case_path}/@esign-status")
    assert status.json()["state"] == "signed"
    assert status.json()["signers"][0]["status"] == "signed"
    assert status.json()["signers"][0]["certificate_serial"] == case.signer_records[0].certificate_serial
    record("officer-status-signed", status)

    download = officer.get(f"{case_path}/@esign-download")
    assert download.status_code == 200 and download.headers["Content-Type"] == "application/pdf"
    record("officer-download", download)
    path = tmp_path / "signed.pdf"
    path.write_bytes(download.content)
    report = pdfsig(path, esign.site_pki().root_pem())
    assert [r["signature"] for r in report] == ["Signature is Valid."]
    assert "PNOSE-191212121212" in report[0]["dn"]

    own_copy = anna.get("@esign-download", case=uid)
    assert own_copy.status_code == 200 and own_copy.content == download.content
    record("signer-download", own_copy)

    validation = officer.get(f"{case_path}/@esign-validation")
    assert validation.status_code == 200
    assert validation.json()["all_valid"] is True
    (signature,) = validation.json()["signatures"]
    assert signature["intact"] and signature["valid"] and signature["trusted"] and signature["bottom_line"]
    assert signature["serial_number"] == "PNOSE-191212121212"
    record("officer-validation", validation)

    events = [entry["event"] for entry in officer.get(f"{case_path}/@esign-audit").json()["items"]]
    assert {"sent", "sign_started", "signed", "downloaded"} <= set(events), events


def test_a_signer_declines_over_rest_and_wrong_calls_get_json_errors(site, tester, pdf_bytes):
    record = Recorder(site.absolute_url())
    officer = Officer(site.absolute_url())
    uid = sent_case_uid(officer, pdf_bytes, (ANNA, BERTIL), "Avtal om städning")
    other_uid = sent_case_uid(officer, pdf_bytes, (ANNA,), "Avtal om hyra")
    record.name(uid, "<case-uid>")

    bertil = RestSigner(site.absolute_url())
    bertil.login(tester, BERTIL)

    forged = bertil.post("@esign-decline", {"case": uid, "reason": "Fel"}, csrf="not-the-token")
    assert_error(forged, 403, "Forbidden")
    record("error-403-csrf", forged)
    assert_error(bertil.post("@esign-decline", {"case": uid}, csrf=""), 403)

    bad_json = bertil.post("@esign-sign", data="{not json")
    assert_error(bad_json, 400, "InvalidInput")
    record("error-400-bad-json", bad_json)
    assert_error(bertil.post("@esign-sign", {"case": uid, "mode": "carrier-pigeon"}), 400)

    unknown = bertil.post("@esign-sign", {"case": "0" * 32, "mode": "qr"})
    record("error-404-unknown-case", unknown)
    # "No such case" and "not your case" read the same, so a guessed UID tells nothing.
    assert assert_error(unknown, 404, "NotFound") == assert_error(
        bertil.post("@esign-decline", {"case": other_uid}), 404, "NotFound"
    )
    assert_error(bertil.get("@esign-download", case=other_uid), 404)
    assert_error(bertil.get("@esign-sign"), 404)  # nothing to collect
    assert_error(bertil.get("@esign-download", case=uid), 404)  # not signed yet

    declined = bertil.post("@esign-decline", {"case": uid, "reason": "Fel belopp i punkt 3"})
    assert declined.status_code == 200, declined.text
    record("signer-decline", declined)
    case = refresh(site, uid)
    assert esign.state_of(case) == "declined"
    assert case.signer_records[1].decline_reason == "Fel belopp i punkt 3"

    too_late = bertil.post("@esign-sign", {"case": uid, "mode": "qr"})
    assert_error(too_late, 409, "WrongState")
    record("error-409-declined-case", too_late)
    assert not [o for o in tester.pending() if o["type"] == "sign"]

    status = officer.get(f"{case.getId()}/@esign-status").json()
    assert [s["status"] for s in status["signers"]] == ["pending", "declined"]
    assert status["signers"][1]["reason"] == "Fel belopp i punkt 3"


def test_officer_endpoints_refuse_strangers_with_json_errors(site, pdf_bytes):
    record = Recorder(site.absolute_url())
    officer = Officer(site.absolute_url())
    uid = sent_case_uid(officer, pdf_bytes, (ANNA,), "Avtal om parkering")
    record.name(uid, "<case-uid>")
    path = refresh(site, uid).getId()

    anonymous = requests.get(
        f"{site.absolute_url()}/++api++/{path}/@esign-status",
        headers={"Accept": "application/json"},
        timeout=30,
    )
    assert_error(anonymous, 401, "NotAuthenticated")
    record("error-401-anonymous-officer-endpoint", anonymous)
    stranger = Officer(site.absolute_url(), auth=("other", "other-secret-1"))
    for endpoint in ("@esign-status", "@esign-validation", "@esign-download", "@esign-audit"):
        assert_error(stranger.get(f"{path}/{endpoint}"), 403, "Forbidden")
    assert_error(stranger.post(f"{path}/@esign-remind", {}), 403, "Forbidden")
    assert_error(officer.get(f"{path}/@esign-validation"), 404, "NotFound")
    assert_error(officer.get(f"{path}/@esign-download"), 404, "NotFound")


def test_the_officer_reminds_pending_signers_over_rest(site, pdf_bytes):
    record = Recorder(site.absolute_url())
    officer = Officer(site.absolute_url())
    uid = sent_case_uid(officer, pdf_bytes, (ANNA, BERTIL), "Avtal om snöröjning")
    record.name(uid, "<case-uid>")
    case = refresh(site, uid)
    path = case.getId()
    for signer in case.signer_records:
        record.name(signer.signer_id, f"<signer-id-{signer.position}>")

    everyone = officer.post(f"{path}/@esign-remind", {})
    assert everyone.status_code == 200, everyone.text
    assert everyone.json() == {"reminded": 2}
    one = officer.post(f"{path}/@esign-remind", {"signers": [case.signer_records[1].signer_id]})
    assert one.json() == {"reminded": 1}
    record("officer-remind", one)
    assert_error(officer.post(f"{path}/@esign-remind", {"signers": "all"}), 400, "InvalidInput")


def test_the_officer_reads_an_intact_audit_trail_over_rest(site, pdf_bytes):
    record = Recorder(site.absolute_url())
    officer = Officer(site.absolute_url())
    uid = sent_case_uid(officer, pdf_bytes, (ANNA,), "Avtal om fönsterputs")
    record.name(uid, "<case-uid>")
    path = refresh(site, uid).getId()
    trail = officer.get(f"{path}/@esign-audit")
    assert trail.status_code == 200, trail.text
    body = trail.json()
    assert body["verification"]["ok"] is True
    assert body["verification"]["count"] == len(body["items"]) >= 1
    assert "sent" in [entry["event"] for entry in body["items"]]
    assert ANNA["personal_number"] not in trail.text
    record("officer-audit", trail)
