"""PostgreSQL restarted, or stopped in the middle of a signature, under two Zope instances.

The cluster of ``conftest.py`` (RelStorage on PostgreSQL); ``cluster.postgres`` stops and
starts the server as an operator's ``systemctl restart`` would (fast shutdown: every client
connection is cut). What must hold afterwards, as a signer and the officer notice it: no
half-made signature (the signed record, the new PDF revision and the audit entry are there
together or not at all), no corrupted PDF, no mail lost or sent twice, and where a request
could not be served, a Swedish "try again" (503) instead of a server error, after which
trying again works.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from cryptography import x509
from test_cluster import (
    CASE_HEADER,
    OFFICER_DONE_SUBJECT,
    OFFICER_EMAIL,
    SIGNER_DONE_SUBJECT,
    SIGNERS,
    Signer,
    caught,
    poll_as_the_page_does,
    queue_is_empty,
    revision_chain,
    send_case,
    sign_order_of,
    text_of,
    wait_for_mails,
)

from helpers.faults import Fault, FaultProxy, Passage, bankid_proxy_for
from helpers.journey import BankIDTester, SignerBrowser, hidden, link_in
from helpers.rest import Officer
from helpers.validators import qpdf_check

#: What a person reads while the database is away (esign.plone.database).
UNAVAILABLE = "Tjänsten är tillfälligt otillgänglig. Försök igen om en stund."
#: How long the fault proxy holds the signer's BankID collect: PostgreSQL stops or restarts meanwhile.
HOLD = 4.0
#: The instances' mail queue processors look at the queue every 3 s (esign.plone.notify.mail).
QUEUE_PASS = 3.5


@pytest.fixture(scope="module")
def bankid(cluster):
    """A fault proxy in front of the cluster's BankID test server, and one more instance that
    talks to BankID through it (the others talk to the server directly): ``(proxy, site URL)``.

    The proxy presents the test server's own certificate and demands the relying party's
    client certificate, as BankID does.
    """
    proxy = bankid_proxy_for(cluster.bankid_dir, cluster.environment["ESIGN_BANKID_URL"]).start()
    try:
        url = cluster.add_instance(env={"ESIGN_BANKID_URL": f"{proxy.url}/rp/v6.0"})
        yield proxy, url
    finally:
        proxy.stop()


# -- what the signer and the officer notice ----------------------------------------------------


def served_or_told_to_retry(response: requests.Response) -> bool:
    """True when the page was served; False for the clear Swedish 503; anything else fails."""
    if response.status_code == 200:
        return True
    assert response.status_code == 503, (response.status_code, response.text[:500])
    assert UNAVAILABLE in response.text and "Traceback" not in response.text, response.text[:500]
    return False


def first_request(get) -> requests.Response:
    """The first request through an instance after the restart; a 503 may come once, then it works."""
    response = get()
    if not served_or_told_to_retry(response):
        time.sleep(1)
        response = get()
        assert response.status_code == 200, (response.status_code, response.text[:500])
    return response


def invitation_link(invitations, person: dict) -> str:
    return link_in(text_of(next(m for m in invitations if person["email"] in str(m["To"]))))


def press_sign_and_approve(browser: SignerBrowser, tester: BankIDTester, uid: str, person: dict) -> dict:
    """The review page, "Skriv under", and the person approves the sign order in the BankID app."""
    review = browser.get(f"@@esign-review?case={uid}")
    assert review.status_code == 200 and "Skriv under" in review.text, review.status_code
    started = browser.post(
        "@@esign-bankid-start",
        {"_esign_csrf": hidden(review.text, "_esign_csrf"), "purpose": "sign", "mode": "qr", "case": uid},
    )
    assert started.status_code == 200 and started.url.endswith("@@esign-bankid"), started.status_code
    order = sign_order_of(tester, person["personal_number"])
    tester.approve(order, personal_number=person["personal_number"], name=person["name"])
    return order


def signed_by_the_page(browser: SignerBrowser, uid: str) -> list:
    """The progress page polls until it stops: it must stop on "complete", then "Tack!" shows."""
    result, answers, _ = poll_as_the_page_does(browser, timeout=60)
    assert result.get("status") == "complete", answers
    assert result["next"].endswith(f"@@esign-done?case={uid}"), result
    assert "Tack! Dokumentet är undertecknat" in browser.get(result["next"]).text
    return answers


def assert_signed_once_each(cluster, officer: Officer, path: str, people, tmp: Path) -> None:
    """The case is signed: one signature per signer in one clean revision chain, audit trail whole."""
    status = officer.get(f"{path}/@esign-status").json()
    assert status["state"] == "signed", status
    assert [s["status"] for s in status["signers"]] == ["signed"] * len(people), status
    serials = [s["certificate_serial"] for s in status["signers"]]
    trail = officer.get(f"{path}/@esign-audit").json()
    assert trail["verification"]["ok"], trail["verification"]
    events = Counter(item["event"] for item in trail["items"])
    made = (events["signed"], events["archive_timestamped"], events["completed"])
    assert made == (len(people), 1, 1), events

    download = officer.http.get(f"{officer.api}/{path}/@esign-download", timeout=60)
    assert download.status_code == 200 and download.content.startswith(b"%PDF"), download.status_code
    pdf = tmp / f"{path}.pdf"
    pdf.write_bytes(download.content)
    ok, output = qpdf_check(pdf)
    assert ok, output
    chain = revision_chain(download.content)
    assert sorted(s["serial"] for s in chain if not s["timestamp"]) == sorted(serials), (chain, serials)
    assert [s["timestamp"] for s in chain] == [False] * len(people) + [True], chain
    assert all(s["coverage"] in ("ENTIRE_REVISION", "ENTIRE_FILE") for s in chain), chain

    from esign.plone.signing.reports import assess_pdf

    root_der = requests.get(f"{cluster.urls[0]}/esign-pki/root.crt", timeout=30).content
    report = assess_pdf(download.content, trust_roots=[x509.load_der_x509_certificate(root_der)])
    assert [(s.indication, s.level) for s in report.signatures] == [("TOTAL-PASSED", "B-LTA")] * len(people)


def assert_completion_mail_once_per_party(cluster, uid: str, people) -> None:
    """Each signer and the officer get the completion mail, once, from whichever queue sent it."""
    wanted = [p["email"] for p in people] + [OFFICER_EMAIL]

    def completion(m) -> bool:
        subject = str(m["Subject"])
        return m[CASE_HEADER] == uid and (SIGNER_DONE_SUBJECT in subject or OFFICER_DONE_SUBJECT in subject)

    wait_for_mails(cluster.mail_dir, completion, count=len(wanted), timeout=30)
    deadline = time.monotonic() + 30
    while not queue_is_empty(cluster.mail_queue) and time.monotonic() < deadline:
        time.sleep(0.3)
    time.sleep(QUEUE_PASS)  # one more pass of each queue processor: nothing more must come
    done = [m for m in caught(cluster.mail_dir) if completion(m)]
    got = Counter(re.search(r"[\w.+-]+@[\w.-]+", str(m["To"])).group(0) for m in done)
    assert got == Counter(wanted), got


# -- 1. restarted while the instances are idle -------------------------------------------------


def test_after_a_postgresql_restart_signers_sign_through_each_instance(
    cluster, pdf_bytes, tmp_path, write_summary
):
    first, second = cluster.urls[:2]
    people = SIGNERS[:2]
    uid, path, invitations = send_case(cluster, first, pdf_bytes, people, "Avtal (databasen startas om)")
    tester = BankIDTester(cluster.bankid_page_url)
    astrid = Signer(1, people[0], login_url=first, sign_url=first)
    bo = Signer(2, people[1], login_url=second, sign_url=second)
    astrid.log_in(invitation_link(invitations, people[0]), tester, uid)

    started = time.monotonic()
    cluster.postgres.restart()
    restart_seconds = time.monotonic() - started

    # Astrid's session was made before the restart: it is in the database and still holds.
    review = first_request(lambda: astrid.browser.get(f"@@esign-review?case={uid}"))
    assert "Skriv under" in review.text
    press_sign_and_approve(astrid.browser, tester, uid, people[0])
    astrid_answers = signed_by_the_page(astrid.browser, uid)

    # The first request through the second instance after the restart is Bo's invitation link.
    first_request(lambda: requests.get(f"{second}/@@esign-login", timeout=30))
    bo.log_in(invitation_link(invitations, people[1]), tester, uid)
    press_sign_and_approve(bo.browser, tester, uid, people[1])
    bo_answers = signed_by_the_page(bo.browser, uid)

    officer = Officer(second, auth=("officer", cluster.settings.officer_password))
    assert_signed_once_each(cluster, officer, path, people, tmp_path)
    assert_completion_mail_once_per_party(cluster, uid, people)
    write_summary(
        "postgres-restart-idle",
        {
            "restart_seconds": round(restart_seconds, 2),
            "status_answers": {"astrid": astrid_answers, "bo": bo_answers},
        },
    )


# -- 2. stopped, or restarted, while a signature is being made ----------------------------------


def collect_held(proxy: FaultProxy, *, after: int, timeout: float = 30) -> Passage:
    """The first BankID collect after the first ``after`` ones that the proxy holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        collects = [p for p in proxy.log if p.path.endswith("/collect")][after:]
        held = [p for p in collects if p.outcome == "delay"]
        if held:
            return held[0]
        time.sleep(0.02)
    raise AssertionError(f"no collect held within {timeout} s: {proxy.log[-5:]}")


def what_was_kept(officer: Officer, path: str) -> str:
    """``"all"`` or ``"nothing"`` of the one signer's signature; anything in between fails.

    The signer's record, the signed document (validation has signatures to report) and the
    audit trail must agree, and the trail's hash chain must hold.
    """
    status = officer.get(f"{path}/@esign-status").json()
    trail = officer.get(f"{path}/@esign-audit").json()
    events = Counter(item["event"] for item in trail["items"])
    validation = officer.get(f"{path}/@esign-validation").status_code
    record = status["signers"][0]
    seen = (status["state"], record["status"], bool(record["certificate_serial"]))
    seen += (events["signed"], events["completed"], validation)
    assert trail["verification"]["ok"], trail["verification"]
    assert events["sign_started"] == 1, events
    if seen == ("signed", "signed", True, 1, 1, 200):
        return "all"
    assert seen == ("awaiting_signature", "pending", False, 0, 0, 404), f"half a signature: {seen}"
    return "nothing"


@pytest.mark.parametrize("outage", ["stopped", "restarted"])
def test_postgresql_going_away_in_the_middle_of_a_signature_keeps_all_or_nothing_and_the_signer_can_sign(
    outage, cluster, bankid, pdf_bytes, tmp_path, write_summary
):
    """``stopped``: PostgreSQL stops while the signature's request runs and stays away until the
    signer has been answered. ``restarted``: it is back before the request goes on, with every
    connection the request held cut."""
    proxy, url = bankid
    person = SIGNERS[2 if outage == "stopped" else 3]
    title = f"Avtal (databasen {'stannar' if outage == 'stopped' else 'startas om'} mitt i)"
    uid, path, invitations = send_case(cluster, url, pdf_bytes, (person,), title)
    tester = BankIDTester(cluster.bankid_page_url)
    signer = Signer(1, person, login_url=url, sign_url=url)
    signer.log_in(invitation_link(invitations, person), tester, uid)
    press_sign_and_approve(signer.browser, tester, uid, person)

    # The progress page asks for the status: the site collects the approved order from BankID
    # and then makes the signature. The proxy holds that collect while PostgreSQL goes away,
    # so the request goes on to make the signature after its database connections were cut.
    proxy.heal()
    collects = len(proxy.outcomes("/collect"))  # the earlier tests' and this login's
    proxy.inject(Fault.delay(HOLD), path="/collect", times=1)
    answers: list[requests.Response] = []
    in_flight = threading.Thread(
        target=lambda: answers.append(
            signer.browser.http.get(
                f"{url}/@@esign-bankid-status", headers={"Accept": "application/json"}, timeout=120
            )
        ),
        name="signature-in-flight",
    )
    in_flight.start()
    held = collect_held(proxy, after=collects)
    if outage == "stopped":
        cluster.postgres.stop()
    else:
        cluster.postgres.restart()
    assert time.monotonic() < held.at + HOLD, f"PostgreSQL {outage} only after the collect went on"
    in_flight.join(60)
    assert not in_flight.is_alive() and answers, "the signature's request never answered"
    answer = answers[0]
    assert "Traceback" not in answer.text, answer.text[:1000]
    assert answer.status_code in (200, 503), (answer.status_code, answer.text[:1000])
    if answer.status_code == 503:
        # The signer is told, in Swedish, that the service is away for a moment.
        assert answer.json() == {"error": {"type": "DatabaseUnavailable", "message": UNAVAILABLE}}
        assert int(answer.headers["Retry-After"]) > 0
    else:
        assert answer.json()["status"] == "complete", answer.text
    officer = Officer(url, auth=("officer", cluster.settings.officer_password))

    if outage == "stopped":
        assert answer.status_code == 503, "signed without a database"
        # While it is away, so is every page: the progress page without JavaScript, and REST.
        page = signer.browser.get("@@esign-bankid?poll=1")
        assert page.status_code == 503 and UNAVAILABLE in page.text and "Traceback" not in page.text
        rest = officer.get(f"{path}/@esign-status")
        assert rest.status_code == 503, (rest.status_code, rest.text[:500])
        assert rest.json() == {"error": {"type": "DatabaseUnavailable", "message": UNAVAILABLE}}
        cluster.postgres.start()

    # What the signer was told is what was kept: all of the signature, or nothing of it.
    kept = what_was_kept(officer, path)
    assert kept == ("all" if answer.status_code == 200 else "nothing"), (kept, answer.status_code)
    if kept == "nothing":
        assert not [
            m
            for m in caught(cluster.mail_dir)
            if m[CASE_HEADER] == uid and SIGNER_DONE_SUBJECT in str(m["Subject"])
        ]
        # The page asks again, as its script does after a 503: the approved order is collected
        # once more and the signature made, once.
        page_answers = signed_by_the_page(signer.browser, uid)
        assert what_was_kept(officer, path) == "all"
    else:
        page_answers = []
        assert "Tack! Dokumentet är undertecknat" in signer.browser.get(answer.json()["next"]).text
    assert proxy.outcomes("/collect")[collects] == "delay", proxy.outcomes("/collect")
    assert_signed_once_each(cluster, officer, path, (person,), tmp_path)
    assert_completion_mail_once_per_party(cluster, uid, (person,))
    write_summary(
        f"postgres-{outage}-mid-signature",
        {
            "first_answer": [answer.status_code, answer.json()],
            "kept_after_the_outage": kept,
            "status_answers_after": page_answers,
            "collects": proxy.outcomes("/collect")[collects:],
        },
    )
