"""When a part of the system fails: what the signer sees, and that nothing is lost or half done.

Real sockets throughout: the site runs on the functional layer's WSGI server; the
TSA, BankID and SMTP are real servers behind :class:`helpers.faults.FaultProxy`,
which a test breaks the way networks and vendors do (refused, 5xx, garbage, slow).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import transaction
from plone import api

from esign.plone import api as esign
from esign.plone import audit
from esign.plone.signing.tsa import TIMESTAMP_REPLY
from esign.plone.testservers.bankid import BankIDTestServer
from esign.plone.testservers.mail import MailCatcher
from esign.plone.workflow import cases
from helpers import faults
from helpers.faults import Fault, FaultProxy, bankid_proxy
from helpers.journey import BankIDTester, SignerBrowser, hidden
from helpers.site import ANNA, BERTIL, send_new_case
from helpers.smtp import text_of
from helpers.trustserver import TrustServer
from helpers.validators import pdfsig

OFFICER = ("officer", "officer-secret-1")
#: The TSA client's timeout in these tests (the site's is 10 s): a slow TSA costs seconds, not tens.
TSA_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def bankid_server(tmp_path_factory):
    server = BankIDTestServer(tmp_path_factory.mktemp("bankid-faults")).start()
    yield server
    server.stop()


@pytest.fixture()
def bankid(bankid_server, monkeypatch):
    """A proxy in front of the BankID test server; the site talks to BankID through it."""
    with bankid_proxy(bankid_server) as proxy:
        for name, value in proxy.environment().items():
            monkeypatch.setenv(name, value)
        yield proxy


@pytest.fixture()
def tester(bankid_server):
    return BankIDTester(bankid_server.page_url)


@pytest.fixture()
def site(functional_portal):
    api.portal.set_registry_record("plone.default_language", "sv")
    user = api.user.create(email="officer@regionen.se", username=OFFICER[0], password=OFFICER[1])
    api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    transaction.commit()
    return functional_portal


@pytest.fixture()
def tsa(site, monkeypatch):
    """The site's own TSA served over HTTP by a separate server, behind a proxy: an external TSA.

    ``esign.tsa_url`` points at the proxy, so every signature and document timestamp
    crosses a real socket that the test can break. The site treats it as any external TSA
    (revocation data may be fetched); the TSA's certificate is the site's own, whose status
    the site answers in process.
    """
    monkeypatch.setenv("ESIGN_TSA_TIMEOUT", str(TSA_TIMEOUT))
    upstream = TrustServer(tsa=esign.site_pki().timestamp_authority()).start()
    proxy = FaultProxy(upstream.url).start()
    api.portal.set_registry_record("esign.tsa_url", f"{proxy.url}/tsa")
    transaction.commit()
    yield proxy
    proxy.stop()
    upstream.stop()


@pytest.fixture()
def sent_case(site, pdf_bytes):
    def factory(signers=(ANNA,), **fields):
        return send_new_case(site, pdf_bytes, officer=OFFICER[0], signers=signers, **fields)

    return factory


def refresh(case):
    case._p_jar.sync()
    return case


def issued_certificates() -> int:
    """How many certificates the site CA has registered (one-time ones included)."""
    from esign.plone.pkiregistry import SiteCertificateRegistry

    return len(SiteCertificateRegistry())


def events(case) -> list[str]:
    return [e.event for e in audit.entries(case)]


def logged_in(site, tester, person=ANNA) -> SignerBrowser:
    browser = SignerBrowser(site.absolute_url())
    assert (
        browser.login_with_bankid(tester, personal_number=person["personal_number"])["status"] == "complete"
    )
    return browser


def start_signing(browser: SignerBrowser, case) -> None:
    """ "Skriv under" on the review page: a BankID sign order starts."""
    review = browser.get(f"@@esign-review?case={case.UID()}")
    assert "Skriv under" in review.text
    browser.post(
        "@@esign-bankid-start",
        {
            "_esign_csrf": hidden(review.text, "_esign_csrf"),
            "purpose": "sign",
            "mode": "qr",
            "case": case.UID(),
        },
    )


def approve_sign_order(tester: BankIDTester, person=ANNA) -> dict:
    order = tester.wait_for_order(kind="sign")
    tester.approve(order, personal_number=person["personal_number"])
    return order


def poll_once(browser: SignerBrowser):
    """One collect, as the progress page's script makes it; returns the HTTP response."""
    return browser.get("@@esign-bankid-status")


def assert_unsigned(case, *, position: int = 0) -> None:
    """Nothing of the signature is there: the record, the document and the audit trail say so."""
    refresh(case)
    record = case.signer_records[position]
    assert record.status == "pending"
    assert record.signed_at is None and not record.certificate_serial
    assert case.signed_document is None
    assert esign.state_of(case) == "awaiting_signature"
    assert "signed" not in events(case) and "completed" not in events(case)
    assert audit.verify(case).ok


def assert_signed_and_valid(case, tmp_path, *, signatures: int = 1) -> None:
    refresh(case)
    assert esign.state_of(case) == "signed"
    assert events(case).count("signed") == signatures and events(case).count("completed") == 1
    path = tmp_path / f"{case.getId()}-signed.pdf"
    path.write_bytes(case.signed_document.data)
    report = pdfsig(path, esign.site_pki().root_pem())
    assert [r["signature"] for r in report] == ["Signature is Valid."] * signatures
    assert esign.validate_case(case).all_valid


# -- 1. the TSA is down, answers 500 or garbage ------------------------------------------------


TSA_FAULTS = {
    "refused": None,
    "500": Fault.answer(500, b"Internal Server Error"),
    "garbage": Fault.garbage(TIMESTAMP_REPLY),
    "cut": Fault.cut(),
}


@pytest.mark.parametrize("fault", list(TSA_FAULTS))
def test_a_broken_tsa_signs_nothing_and_the_signer_can_sign_once_it_is_back(
    fault, site, sent_case, tsa, bankid, tester, tmp_path
):
    case = sent_case()
    anna = logged_in(site, tester)
    issued = issued_certificates()
    if TSA_FAULTS[fault] is None:
        tsa.refuse()
    else:
        tsa.inject(TSA_FAULTS[fault])

    start_signing(anna, case)
    approve_sign_order(tester)
    answer = poll_once(anna)
    status = answer.json()
    assert answer.status_code in (502, 503), (answer.status_code, status)
    assert status["status"] == "failed"
    assert "Ingen underskrift gjordes" in status["message"], status
    assert "Traceback" not in answer.text and "Exception" not in status["message"]
    assert_unsigned(case)
    assert issued_certificates() == issued  # the one-time certificate went with the signature

    tsa.restore()
    tsa.heal()
    signed = anna.sign_with_bankid(tester, case.UID(), personal_number=ANNA["personal_number"])
    assert signed["status"] == "complete", signed
    assert_signed_and_valid(case, tmp_path)


def test_a_tsa_failing_at_the_archive_timestamp_keeps_the_earlier_signatures_as_they_were(
    site, sent_case, tsa, bankid, tester, tmp_path
):
    case = sent_case(signers=(ANNA, BERTIL))
    anna = logged_in(site, tester)
    assert anna.sign_with_bankid(tester, case.UID(), personal_number=ANNA["personal_number"])["status"] == (
        "complete"
    )
    before = refresh(case).signed_document.data
    trail = events(case)
    assert tsa.outcomes("/tsa") == ["forwarded", "forwarded"]  # the size sample, Anna's timestamp
    # Bertil's signature timestamp goes through; the document timestamp of the finished
    # document, the last step before the case completes, does not.
    tsa.inject(Fault.answer(503, b"Service Unavailable"), after=1)

    bertil = logged_in(site, tester, BERTIL)
    start_signing(bertil, case)
    approve_sign_order(tester, BERTIL)
    page = bertil.get("@@esign-bankid?poll=1")  # the progress page as it polls without JavaScript
    assert tsa.outcomes("/tsa") == ["forwarded", "forwarded", "forwarded", "answer"]
    assert page.status_code == 503
    assert "Ingen underskrift gjordes" in page.text and "Försök igen" in page.text
    assert "Traceback" not in page.text

    refresh(case)
    assert [r.status for r in case.signer_records] == ["signed", "pending"]
    assert case.signed_document.data == before  # Anna's signed document, byte for byte
    assert events(case)[: len(trail)] == trail
    assert not {"archive_timestamped", "completed"} & set(events(case))
    assert events(case).count("signed") == 1 and esign.state_of(case) == "awaiting_signature"

    tsa.heal()
    signed = bertil.sign_with_bankid(tester, case.UID(), personal_number=BERTIL["personal_number"])
    assert signed["status"] == "complete", signed
    assert_signed_and_valid(case, tmp_path, signatures=2)


def test_over_rest_a_broken_tsa_answers_503_and_the_signer_starts_again_once_it_is_back(
    site, sent_case, tsa, bankid, tester, tmp_path
):
    from helpers.rest import RestSigner

    case = sent_case()
    client = RestSigner(site.absolute_url())
    client.login(tester, ANNA)
    tsa.inject(Fault.answer(500, b"Internal Server Error"))
    started = client.post("@esign-sign", {"case": case.UID(), "mode": "qr"})
    assert started.status_code == 200, started.text
    approve_sign_order(tester)
    failed = client.get("@esign-sign")
    assert failed.status_code == 503
    assert failed.json() == {"error": {"type": "SigningError", "message": cases.SIGNING_FAILED}}
    assert_unsigned(case)

    # The order is given up (its cookie expired with the answer): the client starts again.
    tsa.heal()
    again = client.get("@esign-sign")
    assert (
        again.status_code == 404
        and again.json()["error"]["message"] == "Ingen BankID-underskrift pågår. Börja om."
    )
    assert client.post("@esign-sign", {"case": case.UID(), "mode": "qr"}).status_code == 200
    approve_sign_order(tester)
    done = client.collect("@esign-sign")[-1]
    assert done.status_code == 200 and done.json()["status"] == "complete", done.text
    assert_signed_and_valid(case, tmp_path)


# -- 2. the TSA is slow ------------------------------------------------------------------------


def test_a_tsa_slower_than_the_timeout_fails_in_bounded_time_and_one_within_it_is_waited_for(
    site, sent_case, tsa, bankid, tester, tmp_path
):
    case = sent_case()
    anna = logged_in(site, tester)
    tsa.inject(Fault.delay(TSA_TIMEOUT + 5))
    start_signing(anna, case)
    approve_sign_order(tester)
    started = time.monotonic()
    answer = poll_once(anna)
    took = time.monotonic() - started
    assert answer.status_code == 503 and "Ingen underskrift gjordes" in answer.json()["message"]
    assert TSA_TIMEOUT <= took < TSA_TIMEOUT + 3, took
    assert_unsigned(case)

    tsa.heal()
    tsa.inject(Fault.delay(TSA_TIMEOUT / 4))  # slow, but within the timeout
    signed = anna.sign_with_bankid(tester, case.UID(), personal_number=ANNA["personal_number"])
    assert signed["status"] == "complete", signed
    assert set(tsa.outcomes("/tsa")[1:]) == {"delay"}
    assert_signed_and_valid(case, tmp_path)


# -- 3. SMTP is down when the case is sent and when it completes -------------------------------


@pytest.fixture()
def smtp(site, tmp_path, monkeypatch):
    """A mail catcher of this test's own (it keeps its port when stopped), MailHost queueing to it."""
    from esign.plone.notify import mail
    from helpers.smtp import free_port

    monkeypatch.setattr(mail, "QUEUE_INTERVAL", 0.2)
    catcher = MailCatcher(tmp_path / "caught", smtp_port=free_port()).start()
    monkeypatch.setenv("ESIGN_SMTP_PORT", str(catcher.smtp_port))
    api.portal.set_registry_record("plone.email_from_address", "e-underskrift@regionen.se")
    mail.configure_mailhost(host="127.0.0.1", port=catcher.smtp_port, queue_directory=tmp_path / "queue")
    transaction.commit()
    yield catcher
    mail.stop_queue_processor(api.portal.get_tool("MailHost"))
    catcher.stop()


def test_mail_of_a_case_sent_and_completed_while_smtp_is_down_all_arrives_once_it_is_back(
    site, smtp, sent_case, bankid, tester
):
    smtp.stop()
    case = sent_case(signers=(ANNA, BERTIL))
    for person in (ANNA, BERTIL):
        browser = logged_in(site, tester, person)
        signed = browser.sign_with_bankid(tester, case.UID(), personal_number=person["personal_number"])
        assert signed["status"] == "complete", signed  # the signer notices nothing
        assert "Tack! Dokumentet är undertecknat" in browser.get(signed["next"]).text
    assert esign.state_of(refresh(case)) == "signed"

    queued = {
        e.data["message_id"].strip("<>"): (e.data["recipient"], e.data["kind"])
        for e in audit.entries(case)
        if e.event == "mail_queued"
    }
    assert sorted(queued.values()) == [
        ("officer", "completed"),
        ("signer:1", "completed"),
        ("signer:1", "invitation"),
        ("signer:2", "completed"),
        ("signer:2", "invitation"),
    ]
    mailhost = api.portal.get_tool("MailHost")
    time.sleep(1.0)  # several passes of the queue against a closed port
    assert mailhost.queueLength() == len(queued)
    assert smtp.messages() == []

    smtp.start()
    deadline = time.monotonic() + 10
    while len(smtp.messages()) < len(queued) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.6)  # a few more passes: nothing is sent twice
    arrived = [str(m["Message-ID"]).strip("<>") for m in smtp.messages()]
    assert sorted(arrived) == sorted(queued)
    assert mailhost.queueLength() == 0
    downloads = [m["To"].addresses[0].addr_spec for m in smtp.messages() if "@@esign-download" in text_of(m)]
    assert sorted(downloads) == sorted([ANNA["email"], BERTIL["email"]])  # the parties get the document


# -- 4. BankID answers 5xx, maintenance, nothing in time, or refuses the connection ----------

#: The BankID client's timeout in these tests (the site's is 10 s).
BANKID_TIMEOUT = 1.5
RFA5 = "Internt tekniskt fel. Försök igen."


@pytest.fixture()
def fast_bankid(monkeypatch):
    """The site's BankID client gives up after :data:`BANKID_TIMEOUT` seconds instead of 10."""
    monkeypatch.setenv("ESIGN_BANKID_TIMEOUT", str(BANKID_TIMEOUT))


def break_bankid(proxy: FaultProxy, fault: str, path: str) -> None:
    if fault == "500":
        proxy.inject(
            Fault.answer(500, b"<h1>Internal Server Error</h1>", content_type="text/html"), path=path
        )
    elif fault == "maintenance":
        proxy.inject(Fault.bankid_error(503, "maintenance", "Service temporarily unavailable"), path=path)
    elif fault == "timeout":
        proxy.inject(Fault.hang(BANKID_TIMEOUT + 5), path=path)
    else:
        proxy.refuse()


def mend_bankid(proxy: FaultProxy) -> None:
    proxy.restore()
    proxy.heal()


BANKID_FAULTS = ("500", "maintenance", "timeout", "refused")


@pytest.mark.parametrize("fault", BANKID_FAULTS)
def test_bankid_failing_at_the_sign_order_shows_rfa5_and_the_signer_can_try_again(
    fault, site, sent_case, bankid, fast_bankid, tester, tmp_path
):
    case = sent_case()
    anna = logged_in(site, tester)
    break_bankid(bankid, fault, "/rp/v6.0/sign")
    review = anna.get(f"@@esign-review?case={case.UID()}")
    started = time.monotonic()
    page = anna.post(
        "@@esign-bankid-start",
        {
            "_esign_csrf": hidden(review.text, "_esign_csrf"),
            "purpose": "sign",
            "mode": "qr",
            "case": case.UID(),
        },
    )
    assert time.monotonic() - started < BANKID_TIMEOUT + 2
    assert page.status_code == 502
    assert RFA5 in page.text and "Traceback" not in page.text
    assert not [o for o in tester.pending() if o["type"] == "sign"]
    assert_unsigned(case)
    assert "sign_started" not in events(case)

    mend_bankid(bankid)
    signed = anna.sign_with_bankid(tester, case.UID(), personal_number=ANNA["personal_number"])
    assert signed["status"] == "complete", signed
    assert_signed_and_valid(case, tmp_path)


@pytest.mark.parametrize("fault", BANKID_FAULTS)
def test_bankid_failing_at_collect_after_the_approval_signs_nothing_and_the_signer_can_try_again(
    fault, site, sent_case, bankid, fast_bankid, tester, tmp_path
):
    case = sent_case()
    anna = logged_in(site, tester)
    start_signing(anna, case)
    approve_sign_order(tester)  # the person approved in the app; the site never hears of it
    break_bankid(bankid, fault, "/rp/v6.0/collect")
    started = time.monotonic()
    status = poll_once(anna).json()
    assert time.monotonic() - started < BANKID_TIMEOUT + 2
    assert status == {"status": "failed", "message": RFA5}
    assert_unsigned(case)

    mend_bankid(bankid)
    # The abandoned order is not picked up again: the signer starts over.
    assert poll_once(anna).json()["status"] == "failed"
    assert_unsigned(case)
    signed = anna.sign_with_bankid(tester, case.UID(), personal_number=ANNA["personal_number"])
    assert signed["status"] == "complete", signed
    assert_signed_and_valid(case, tmp_path)


@pytest.mark.parametrize(
    ("fault", "path"), [("maintenance", "/rp/v6.0/auth"), ("timeout", "/rp/v6.0/collect")]
)
def test_bankid_failing_during_the_login_shows_rfa5_and_the_next_login_works(
    fault, path, site, bankid, fast_bankid, tester
):
    anna = SignerBrowser(site.absolute_url())
    break_bankid(bankid, fault, path)
    page = anna.get("@@esign-login?val=medborgare")
    started = anna.post(
        "@@esign-bankid-start",
        {"_esign_csrf": hidden(page.text, "_esign_csrf"), "purpose": "login", "mode": "qr"},
    )
    if path.endswith("/auth"):
        assert started.status_code == 502 and RFA5 in started.text
    else:
        tester.approve(tester.wait_for_order(kind="auth"), personal_number=ANNA["personal_number"])
        assert poll_once(anna).json() == {"status": "failed", "message": RFA5}
    assert anna.get("@@esign-pending").status_code == 401  # not logged in

    mend_bankid(bankid)
    assert anna.login_with_bankid(tester, personal_number=ANNA["personal_number"])["status"] == "complete"
    assert anna.get("@@esign-pending").status_code == 200


def test_an_order_given_up_after_a_failed_collect_is_cancelled_so_the_next_attempt_starts_cleanly(
    site, sent_case, bankid, fast_bankid, tester, tmp_path
):
    case = sent_case()
    anna = logged_in(site, tester)
    start_signing(anna, case)
    order = tester.wait_for_order(kind="sign")  # pending: the person has not opened the app yet
    bankid.inject(Fault.answer(502, b"Bad Gateway"), path="/rp/v6.0/collect", times=1)
    assert poll_once(anna).json() == {"status": "failed", "message": RFA5}
    assert bankid.outcomes("/cancel") == ["forwarded"]
    assert order["orderRef"] not in [o["orderRef"] for o in tester.pending()]

    signed = anna.sign_with_bankid(tester, case.UID(), personal_number=ANNA["personal_number"])
    assert signed["status"] == "complete", signed
    assert_signed_and_valid(case, tmp_path)


def test_when_bankid_was_unreachable_the_old_order_makes_the_next_attempt_say_rfa4_once(
    site, sent_case, bankid, fast_bankid, tester, tmp_path
):
    case = sent_case()
    anna = logged_in(site, tester)
    start_signing(anna, case)
    tester.wait_for_order(kind="sign")
    bankid.refuse()
    assert poll_once(anna).json() == {"status": "failed", "message": RFA5}
    bankid.restore()

    review = anna.get(f"@@esign-review?case={case.UID()}")
    again = anna.post(
        "@@esign-bankid-start",
        {
            "_esign_csrf": hidden(review.text, "_esign_csrf"),
            "purpose": "sign",
            "mode": "qr",
            "case": case.UID(),
        },
    )
    # BankID refuses a second order while the first is pending, and cancels the first.
    assert again.status_code == 502
    assert "redan påbörjad. Försök igen." in again.text
    assert_unsigned(case)
    signed = anna.sign_with_bankid(tester, case.UID(), personal_number=ANNA["personal_number"])
    assert signed["status"] == "complete", signed
    assert_signed_and_valid(case, tmp_path)


# -- 5. an instance killed with SIGKILL in the middle of a signature ----------------------------


class Instance:
    """A real Zope instance (FileStorage) in a process of its own: ``helpers/faults.py serve``."""

    def __init__(self, home, *, port: int, environment: dict[str, str], tsa_url: str) -> None:
        self.home, self.port, self.environment, self.tsa_url = home, port, environment, tsa_url
        self.process: subprocess.Popen | None = None

    @property
    def portal_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/Plone"

    def start(self, *, timeout: float = 90) -> Instance:
        port_file = self.home / "port"
        port_file.unlink(missing_ok=True)
        log = (self.home / "instance.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(faults.__file__)),
                "serve",
                str(self.home),
                "--port",
                str(self.port),
                "--port-file",
                str(port_file),
                "--signer",
                json.dumps(ANNA),
                "--tsa-url",
                self.tsa_url,
            ],
            env=self.environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("the instance did not start:\n" + self.log()[-3000:])
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no closing of the FileStorage."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        assert self.process.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        return (self.home / "instance.log").read_text(errors="replace")

    def rest(self, path: str, *, expect: int = 200) -> dict:
        response = requests.get(
            f"{self.portal_url}/{faults.KILL_CASE_ID}/{path}",
            auth=faults.OFFICER,
            headers={"Accept": "application/json"},
            timeout=30,
        )
        assert response.status_code == expect, (path, response.status_code, response.text[:500])
        return response.json()


def test_an_instance_killed_while_signing_comes_back_with_the_case_whole_and_the_signature_can_be_made(
    bankid_server, tester, tmp_path
):
    from helpers.smtp import free_port
    from helpers.validators import qpdf_check

    port = free_port()
    # The instance's own TSA, reached over HTTP through the proxy as an external one.
    with FaultProxy(f"http://127.0.0.1:{port}") as tsa, MailCatcher(tmp_path / "mail") as catcher:
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ESIGN_")},
            **bankid_server.environment(),
            "ESIGN_PKI_DIR": str(tmp_path / "pki"),
            "ESIGN_SMTP_HOST": "127.0.0.1",
            "ESIGN_SMTP_PORT": str(catcher.smtp_port),
            "ESIGN_MAIL_QUEUE": str(tmp_path / "queue"),
        }
        home = tmp_path / "instance"
        home.mkdir()
        instance = Instance(
            home, port=port, environment=environment, tsa_url=f"{tsa.url}/Plone/esign-pki/tsa"
        )
        try:
            instance.start()
            anna = SignerBrowser(instance.portal_url)
            assert (
                anna.login_with_bankid(tester, personal_number=ANNA["personal_number"])["status"]
                == "complete"
            )
            case_uid = instance.rest("@esign-status")["uid"]
            # The size sample and the signature timestamp pass; the document timestamp, the last
            # step before the signature is committed, hangs: the instance is killed while it waits.
            tsa.inject(Fault.hang(60), after=2)
            start_signing_uid(anna, case_uid)
            approve_sign_order(tester)
            in_flight = threading.Thread(target=_poll_quietly, args=(anna,), daemon=True)
            in_flight.start()
            tsa.wait_for("/tsa", outcome="hang", timeout=30)
            instance.kill()
            in_flight.join(timeout=10)
            assert tsa.outcomes("/tsa") == ["forwarded", "forwarded", "hang"]

            # The FileStorage holds whole transactions only (an independent check of the file).
            check = subprocess.run(
                [sys.executable, "-m", "ZODB.scripts.fstest", str(home / "var" / "Data.fs")],
                capture_output=True,
                text=True,
            )
            assert check.returncode == 0, check.stdout + check.stderr

            tsa.heal()
            instance.start()  # the same Data.fs
            status = instance.rest("@esign-status")
            assert status["state"] == "awaiting_signature"
            assert [(s["status"], s["signed_at"], s["certificate_serial"]) for s in status["signers"]] == [
                ("pending", None, None)
            ]
            trail = instance.rest("@esign-audit")
            assert trail["verification"]["ok"]
            assert [i["event"] for i in trail["items"]].count("sign_started") == 1
            assert not {"signed", "archive_timestamped", "completed"} & {i["event"] for i in trail["items"]}
            unsigned = instance.rest("@esign-validation", expect=404)
            assert unsigned["error"]["message"] == "Dokumentet har inga underskrifter ännu."

            # The progress page polls again, as its script does after a failed request: the
            # approved order is collected once more and the signature made, once.
            status = anna.poll_bankid(timeout=30)
            assert status["status"] == "complete", status
            status = instance.rest("@esign-status")
            assert status["state"] == "signed" and status["signers"][0]["status"] == "signed"
            events_after = [i["event"] for i in instance.rest("@esign-audit")["items"]]
            assert events_after.count("signed") == 1 and events_after.count("completed") == 1

            download = anna.get(f"@@esign-download?case={case_uid}")
            assert download.status_code == 200 and download.content.startswith(b"%PDF")
            signed_pdf = tmp_path / "signed.pdf"
            signed_pdf.write_bytes(download.content)
            root = requests.get(f"{instance.portal_url}/esign-pki/root.crt", timeout=10).content
            root_pem = _pem(root)
            assert [r["signature"] for r in pdfsig(signed_pdf, root_pem)] == ["Signature is Valid."]
            ok, output = qpdf_check(signed_pdf)
            assert ok, output
        finally:
            instance.stop()


def start_signing_uid(browser: SignerBrowser, uid: str) -> None:
    review = browser.get(f"@@esign-review?case={uid}")
    assert "Skriv under" in review.text, review.text[:500]
    browser.post(
        "@@esign-bankid-start",
        {"_esign_csrf": hidden(review.text, "_esign_csrf"), "purpose": "sign", "mode": "qr", "case": uid},
    )


def _poll_quietly(browser: SignerBrowser) -> None:
    # The instance dies under the request: the browser sees a broken connection.
    with contextlib.suppress(requests.RequestException):
        browser.get("@@esign-bankid-status")


def _pem(der: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
