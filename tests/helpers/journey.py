"""A signer's browser, scripted with requests: the pages, forms and cookies a person would use."""

from __future__ import annotations

import re
import time

import requests


def hidden(html: str, name: str) -> str:
    tag = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', html)
    assert tag, f"no {name} field on the page"
    return re.search(r'value="([^"]*)"', tag.group(0)).group(1)


def link_in(mail_text: str) -> str:
    match = re.search(r"(https?://\S+/@@esign-link\?t=[\w-]+)", mail_text)
    assert match, "no 'Hantera ärendet' link in the mail"
    return match.group(1)


class BankIDTester:
    """The person with the BankID app: approves orders on the test server's page."""

    def __init__(self, page_url: str) -> None:
        self.page_url = page_url.rstrip("/")

    def pending(self) -> list[dict]:
        return requests.get(f"{self.page_url}/orders.json", timeout=10).json()

    def wait_for_order(self, *, kind: str, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            orders = [o for o in self.pending() if o["type"] == kind]
            if orders:
                return orders[-1]
            time.sleep(0.1)
        raise AssertionError(f"no pending BankID {kind} order")

    def approve(self, order: dict, *, personal_number: str, name: str | None = None) -> None:
        requests.get(f"{self.page_url}/orders/{order['orderRef']}", timeout=10)  # "open the app"
        form = {"personal_number": personal_number, "name": name} if name else {"person": personal_number}
        response = requests.post(
            f"{self.page_url}/orders/{order['orderRef']}/approve",
            data=form,
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code in (200, 303), response.text

    def cancel(self, order: dict) -> None:
        requests.post(f"{self.page_url}/orders/{order['orderRef']}/cancel", allow_redirects=False, timeout=10)


class SignerBrowser:
    def __init__(self, portal_url: str) -> None:
        self.portal_url = portal_url
        self.http = requests.Session()

    def get(self, url: str, **kw) -> requests.Response:
        return self.http.get(url if url.startswith("http") else f"{self.portal_url}/{url}", timeout=30, **kw)

    def post(self, url: str, data: dict, **kw) -> requests.Response:
        return self.http.post(
            url if url.startswith("http") else f"{self.portal_url}/{url}", data=data, timeout=30, **kw
        )

    def poll_bankid(self, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.get("@@esign-bankid-status").json()
            if status["status"] != "pending":
                return status
            time.sleep(0.2)
        raise AssertionError("BankID order never finished")

    def login_with_bankid(
        self, tester: BankIDTester, *, personal_number: str, name: str | None = None
    ) -> dict:
        page = self.get("@@esign-login?val=medborgare")
        assert "BankID på annan enhet" in page.text
        started = self.post(
            "@@esign-bankid-start",
            {"_esign_csrf": hidden(page.text, "_esign_csrf"), "purpose": "login", "mode": "qr"},
        )
        assert started.url.endswith("@@esign-bankid"), started.url
        assert "<svg" in started.text, started.text[-3000:]  # the animated QR code, rendered by the server
        tester.approve(tester.wait_for_order(kind="auth"), personal_number=personal_number, name=name)
        return self.poll_bankid()

    def sign_with_bankid(self, tester: BankIDTester, case_uid: str, *, personal_number: str) -> dict:
        review = self.get(f"@@esign-review?case={case_uid}")
        assert "Skriv under" in review.text
        self.post(
            "@@esign-bankid-start",
            {
                "_esign_csrf": hidden(review.text, "_esign_csrf"),
                "purpose": "sign",
                "mode": "qr",
                "case": case_uid,
            },
        )
        order = tester.wait_for_order(kind="sign")
        tester.approve(order, personal_number=personal_number)
        return {"order": order, **self.poll_bankid()}

    def login_with_siths(self, *, person: str, code: str = "123456") -> requests.Response:
        page = self.get("@@esign-login?val=personal")
        to_idp = self.post(
            "@@esign-oidc-start",
            {"_esign_csrf": hidden(page.text, "_esign_csrf"), "purpose": "login"},
            allow_redirects=False,
        )
        return self.approve_at_idp(to_idp.headers["Location"], person=person, code=code)

    def sign_with_siths(self, case_uid: str, *, person: str, code: str = "123456") -> requests.Response:
        review = self.get(f"@@esign-review?case={case_uid}")
        to_idp = self.post(
            "@@esign-oidc-start",
            {"_esign_csrf": hidden(review.text, "_esign_csrf"), "purpose": "sign", "case": case_uid},
            allow_redirects=False,
        )
        return self.approve_at_idp(to_idp.headers["Location"], person=person, code=code)

    def approve_at_idp(self, authorize_url: str, *, person: str, code: str) -> requests.Response:
        login_page = self.http.get(authorize_url, timeout=30)
        assert "eTjänstekort" in login_page.text, login_page.text[:500]
        idp = authorize_url.split("/authorize")[0]
        back = self.http.post(
            f"{idp}/authorize",
            data={"tx": hidden(login_page.text, "tx"), "person": person, "code": code, "action": "approve"},
            timeout=30,
        )
        return back
