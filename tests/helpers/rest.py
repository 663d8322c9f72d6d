"""The REST tests' shared parts: the BankID test server, the officer's and the signer's clients,
and the recorder that writes the exchanges worth showing as HTTP messages.

The recordings go to ``test-output/rest/`` unless ``$ESIGN_RECORD_REST`` names another folder;
``ESIGN_RECORD_REST=docs/rest`` refreshes the README's examples. Volatile values (UIDs, times,
hashes, tokens, mail ids) become placeholders, so recording twice writes the same files.
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

from esign.plone.testservers.bankid import BankIDTestServer
from helpers.journey import BankIDTester

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
        text = re.sub(r'"<\d+\.\d+\.\d+@[\w.-]+>"', '"<message-id>"', text)
        text = re.sub(r"\b[0-9a-f]{64}\b", "<sha256>", text)
        # How many mail outcomes a tick finds depends on how far the mail queue has got.
        text = re.sub(r'"deliveries": \d+', '"deliveries": <n>', text)
        text = re.sub(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>", text)
        return re.sub(r"\b[0-9a-f]{32}\b", "<uid>", text)

    def __call__(self, name: str, response: requests.Response, *, keep: tuple[str, ...] = ()) -> None:
        sent = response.request
        path = sent.url.replace(self.portal_url, "/Plone")
        lines = [f"{sent.method} {path} HTTP/1.1"]
        for header in ("Accept", "Authorization", "Content-Type", "X-CSRF-Token"):
            if header in sent.headers:
                lines.append(f"{header}: {sent.headers[header]}")  # the test accounts' Basic auth
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
