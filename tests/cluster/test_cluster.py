"""Ten signers of one parallel case sign at the same moment through two Zope instances on RelStorage.

The instances are separate processes on one PostgreSQL database (``conftest.py``,
``scripts/cluster.py``). Each signer does what their browser would (``helpers.journey``):
opens the invitation from the mail catcher and logs in with BankID on one instance, then on
the other instance presses "Skriv under" and has the BankID app approve the sign order. Two
barriers line the ten up: all press "Skriv under" at the same moment, and all BankID apps have
approved before the first status poll, so the ten signatures (the collect that completes the
order, then ``sign_case``) run at the same moment, alternating between the instances.

The case's document, the signer records and the audit trail are one ZODB object graph:
concurrent signatures conflict, and Zope retries the losing requests (``max-conflict-retries``,
3 by default). The test polls as the progress page's script does: again after a "pending" or
an answer that is not JSON, and not after anything else, so a request that Zope gave up on
(a 500 with Plone's JSON error) leaves the signer where the page would. What must hold
afterwards: every signer's page reached "Tack!", the case is ``signed`` exactly once, ten
signatures in one linear revision chain, none lost or doubled, and one completion mail per party.
A second test stands in for a burst bigger than Zope's retries can take.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import itertools
import re
import threading
import time
from collections import Counter
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from esign.plone.testservers.bankid import PERSONAS
from helpers.journey import BankIDTester, SignerBrowser, hidden, link_in
from helpers.people import personnummer
from helpers.rest import Officer, create_case, sent_case_uid
from helpers.validators import qpdf_check

OFFICER_EMAIL = "officer@example.se"  # scripts/esign_site.py
#: What the signers' and the officer's completion mails say (esign.plone.notify.mail, Swedish).
SIGNER_DONE_SUBJECT = "Alla parter har undertecknat dokumentet"
OFFICER_DONE_SUBJECT = "Ärendet är färdigt:"
INVITATION = "Hantera ärendet"
CASE_HEADER = "X-ESign-Case"  # the UID of the case a mail is about
#: Seconds a signer's request may take in the burst (a browser waits minutes).
REQUEST_TIMEOUT = 180
PEOPLE = (
    ("Astrid", "Ek"),
    ("Bo", "Lind"),
    ("Cajsa", "Holm"),
    ("Dan", "Berg"),
    ("Elsa", "Sjöberg"),
    ("Frans", "Åkesson"),
    ("Greta", "Falk"),
    ("Hugo", "Dahl"),
    ("Ines", "Strand"),
    ("Jon", "Nyström"),
)


# Born in December 1912, as the BankID test persons (191212121212): no living person's number.
SIGNERS = tuple(
    {
        "name": f"{given} {surname}",
        "personal_number": personnummer(dt.date(1912, 12, 1 + n), 980 + n),
        "email": f"{given.lower()}@example.se",
    }
    for n, (given, surname) in enumerate(PEOPLE)
)


# -- mail ------------------------------------------------------------------------------------


def caught(mail_dir: Path) -> list[EmailMessage]:
    """Every mail the catcher kept, in arrival order (it writes each whole, then renames it)."""
    parser = BytesParser(policy=default_policy)
    return [parser.parsebytes(path.read_bytes()) for path in sorted(mail_dir.glob("*.eml"))]


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def wait_for_mails(mail_dir: Path, predicate, *, count: int, timeout: float = 60.0) -> list[EmailMessage]:
    """The caught mails matching ``predicate`` once there are ``count`` of them (or the time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in caught(mail_dir) if predicate(m)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def queue_is_empty(queue_dir: Path) -> bool:
    """Nothing left in the instances' shared maildir queue."""
    return not [p for sub in ("new", "cur") for p in (queue_dir / sub).iterdir() if p.is_file()]


# -- the signer's browser ------------------------------------------------------------------------


def sign_order_of(tester: BankIDTester, personal_number: str, timeout: float = 30) -> dict:
    """The pending BankID sign order locked to this person (ten are pending at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for order in tester.pending():
            if order["type"] == "sign" and order["personalNumber"] == personal_number:
                return order
        time.sleep(0.1)
    raise AssertionError("no pending BankID sign order for this signer")


def poll_as_the_page_does(browser: SignerBrowser, timeout: float = 150) -> tuple[dict, list, tuple]:
    """``@@esign-bankid-status`` as the progress page's script polls it (``signer_bankid.pt``).

    The script asks for JSON and polls again while the answer says ``pending``, after an
    answer that is not JSON (its ``fetch().catch``) and after an error without a status (a 503
    while the database is away); on any other answer it stops. Returns
    the last answer, each answer's HTTP status with the start of its body, and when the last
    request was sent and answered (``time.monotonic()``).
    """
    answers: list[tuple[int, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent = time.monotonic()
        # As a browser's fetch(), no 30-second limit: under load a request waits for a worker
        # thread, and each conflict retry waits up to 1, 2, 4 s before it runs again.
        answer = browser.http.get(
            f"{browser.portal_url}/@@esign-bankid-status",
            headers={"Accept": "application/json"},
            timeout=REQUEST_TIMEOUT,
        )
        answered = time.monotonic()
        answers.append((answer.status_code, answer.text[:200]))
        try:
            status = answer.json()
        except ValueError:
            time.sleep(0.5)
            continue
        if "status" not in status and "error" in status:
            time.sleep(0.5)
            continue
        if status.get("status") != "pending":
            return status, answers, (sent, answered)
        time.sleep(0.2)
    raise AssertionError(f"the BankID order never finished; answers {answers}")


class Signer:
    """One of the ten: logs in on one instance, signs on the other."""

    def __init__(self, number: int, person: dict, *, login_url: str, sign_url: str) -> None:
        self.number, self.person = number, person
        self.login_url, self.sign_url = login_url, sign_url
        self.browser = SignerBrowser(login_url)
        self.result: dict = {}
        self.answers: list[tuple[int, str]] = []
        self.seconds = 0.0
        self.in_flight = (0.0, 0.0)
        self.error: BaseException | None = None

    @property
    def given_name(self) -> str:
        return self.person["name"].split()[0]

    def log_in(self, invitation_link: str, tester: BankIDTester, case_uid: str) -> None:
        # The link names the instance that sent the mail; this browser comes in through its own.
        link = re.sub(r"^https?://[^/]+/[^/]+", self.login_url, invitation_link)
        landing = self.browser.get(link)
        assert landing.url.endswith("/@@esign-login"), landing.url
        logged_in = self.browser.login_with_bankid(
            tester, personal_number=self.person["personal_number"], name=self.person["name"]
        )
        assert logged_in.get("status") == "complete", logged_in
        assert logged_in["next"].endswith(f"@@esign-review?case={case_uid}"), logged_in

    def sign(self, tester: BankIDTester, case_uid: str, press, collect: threading.Barrier) -> None:
        """Review, "Skriv under", approve in the app, then the progress page until it stops.

        ``press`` is a barrier (all press at the same moment) or a lock (one after the other);
        all wait at ``collect`` before the first status poll, so the signatures are made at once.
        """
        try:
            self.browser.portal_url = self.sign_url  # the session, made on the other instance, goes along
            review = self.browser.get(f"@@esign-review?case={case_uid}")
            assert review.status_code == 200 and "Skriv under" in review.text, review.status_code
            form = {
                "_esign_csrf": hidden(review.text, "_esign_csrf"),
                "purpose": "sign",
                "mode": "qr",
                "case": case_uid,
            }
            together = isinstance(press, threading.Barrier)
            if together:
                press.wait()
            with contextlib.nullcontext() if together else press:
                started = self.browser.http.post(
                    f"{self.sign_url}/@@esign-bankid-start", data=form, timeout=REQUEST_TIMEOUT
                )
            assert started.status_code == 200 and started.url.endswith("@@esign-bankid"), (
                f'"Skriv under" answered {started.status_code}: {page_message(started.text)!r}'
            )
            order = sign_order_of(tester, self.person["personal_number"])
            tester.approve(order, personal_number=self.person["personal_number"], name=self.person["name"])
            collect.wait()
            began = time.monotonic()
            # in_flight: when the request that made the signature was sent and answered.
            self.result, self.answers, self.in_flight = poll_as_the_page_does(self.browser)
            self.seconds = time.monotonic() - began
            self.result["order_ref"] = order["orderRef"]
        except BaseException as exc:
            self.error = exc
            if isinstance(press, threading.Barrier):
                press.abort()
            collect.abort()


def page_message(html: str) -> str:
    """The error message a signer page shows (``signer_error.pt``), else the start of its text."""
    match = re.search(r'class="[^"]*esign-error[^"]*"[^>]*>(.*?)</div>', html, re.S)
    text = match.group(1) if match else re.sub(r"<[^>]+>", " ", html)
    return " ".join(text.split())[:300]


def warm_up(cluster, pdf: bytes, urls: list[str]) -> None:
    """One signature through each of ``urls``, one at a time, before the burst.

    A fresh Zope process compiles each page template and TALES expression when it is first
    used, and Python 3.11 keeps the AST constructor's recursion counter per interpreter:
    threads compiling at the same moment can fail with ``SystemError: AST constructor
    recursion depth mismatch`` (a 500). A site in service has compiled its pages long before
    a burst of signers; this gives the fresh test instances that state.
    """
    tester = BankIDTester(cluster.bankid_page_url)
    for url, persona in zip(urls, PERSONAS, strict=False):
        person = {
            "name": persona.name,
            "personal_number": persona.personal_number,
            "email": "warm@example.se",
        }
        officer = Officer(url, auth=("officer", cluster.settings.officer_password))
        uid = sent_case_uid(officer, pdf, (person,), title="Uppvärmning")
        mail = wait_for_mails(
            cluster.mail_dir, lambda m, uid=uid: m[CASE_HEADER] == uid and INVITATION in text_of(m), count=1
        )[0]
        browser = SignerBrowser(url)
        browser.get(re.sub(r"^https?://[^/]+/[^/]+", url, link_in(text_of(mail))))
        assert (
            browser.login_with_bankid(tester, personal_number=persona.personal_number)["status"] == "complete"
        )
        signed = browser.sign_with_bankid(tester, uid, personal_number=persona.personal_number)
        assert signed["status"] == "complete", signed
        assert browser.get(signed["next"]).status_code == 200


def send_case(cluster, url: str, pdf: bytes, people, title: str) -> tuple[str, str, list[EmailMessage]]:
    """The officer makes and sends a case over REST; returns its UID, path and the invitations."""
    officer = Officer(url, auth=("officer", cluster.settings.officer_password))
    created = create_case(officer, pdf, people, title=title)
    assert created.status_code == 201, created.text
    uid, path = created.json()["UID"], created.json()["@id"].rsplit("/", 1)[1]
    sent = officer.post(f"{path}/@workflow/send")
    assert sent.status_code == 200 and sent.json()["review_state"] == "awaiting_signature", sent.text
    invitations = wait_for_mails(
        cluster.mail_dir, lambda m: m[CASE_HEADER] == uid and INVITATION in text_of(m), count=len(people)
    )
    invited = Counter(str(m["To"]) for m in invitations)
    assert sorted(invited.values()) == [1] * len(people), invited
    return uid, path, invitations


def log_in(signers: list[Signer], invitations, tester: BankIDTester, uid: str) -> None:
    """One by one: the test server cannot tell whose BankID *auth* order is whose."""
    for signer in signers:
        mail = next(m for m in invitations if signer.person["email"] in str(m["To"]))
        signer.log_in(link_in(text_of(mail)), tester, uid)


def burst(signers: list[Signer], tester: BankIDTester, uid: str, *, press_together: bool = True) -> None:
    """All press "Skriv under" at once (or one after the other), and all signatures are made at once."""
    press = threading.Barrier(len(signers)) if press_together else threading.Lock()
    collect = threading.Barrier(len(signers))
    threads = [
        threading.Thread(target=s.sign, args=(tester, uid, press, collect), name=f"signer-{s.number}")
        for s in signers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    # A signer whose barrier broke only waited for one that failed: report the failures themselves.
    errors = [
        f"signer {s.number}: {s.error}"
        for s in signers
        if s.error is not None and not isinstance(s.error, threading.BrokenBarrierError)
    ]
    assert not errors, "\n".join(errors)
    assert all(s.error is None for s in signers), [s.error for s in signers]
    assert not any(t.is_alive() for t in threads)
    for signer in signers:
        # An answer without a status (a 500 with Plone's JSON error for a ConflictError once Zope
        # gave up retrying) stops the page: the signer is left on it, and no signature was made.
        assert signer.result.get("status") == "complete", (
            f"signer {signer.number}: the progress page stopped on {signer.answers[-1]}; "
            f"answers {signer.answers}"
        )
        assert signer.result["next"].endswith(f"@@esign-done?case={uid}"), signer.result
    # The requests that made the signatures were all in flight at one moment: each had to change
    # the case while the others did, so they did collide (else this proved nothing).
    last_start = max(s.in_flight[0] for s in signers)
    first_end = min(s.in_flight[1] for s in signers)
    assert last_start < first_end, [s.in_flight for s in signers]


# -- the PDF ------------------------------------------------------------------------------------


def revision_chain(pdf: bytes) -> list[dict]:
    """Each signature and document timestamp in the file: its field, revision and coverage (pyHanko)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    chain = []
    for signature in reader.embedded_signatures:
        chain.append(
            {
                "field": signature.field_name,
                "revision": signature.signed_revision,
                "coverage": signature.evaluate_signature_coverage().name,
                "end": signature.byte_range[2] + signature.byte_range[3],
                "timestamp": signature.sig_object.get("/Type") == "/DocTimeStamp",
                "serial": None
                if signature.sig_object.get("/Type") == "/DocTimeStamp"
                else f"{signature.signer_cert.serial_number:x}",
            }
        )
    return sorted(chain, key=lambda s: s["revision"])


def conflict_lines(logs: list[Path]) -> Counter:
    """How often Zope retried (or gave up on) a request after a ConflictError, per view
    (scripts/cluster.py's IPubFailure handler logs each), and other log lines naming a conflict."""
    counts: Counter = Counter()
    for log in logs:
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            match = re.search(r"(conflict-retry|conflict-gave-up) .* of (\S+):", line)
            if match:
                counts[f"{match.group(1)} {match.group(2).rsplit('/', 1)[-1]}"] += 1
            elif re.search(r"conflict|collided", line, re.I) and "SiteErrorLog" not in line:
                counts["other log lines on conflicts"] += 1
    return counts


# -- the test ------------------------------------------------------------------------------------


def test_ten_signers_sign_one_case_at_the_same_moment_through_two_instances(
    cluster, pdf_bytes, write_summary
):
    timings: dict[str, float] = {"cluster start": round(sum(cluster.timings.values()), 1)}
    t0 = time.monotonic()
    warm_up(cluster, pdf_bytes, cluster.urls[:2])
    timings["warm-up: one signature through each instance"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    first, second = cluster.urls[:2]
    uid, path, invitations = send_case(cluster, first, pdf_bytes, SIGNERS, "Samverkansavtal (tio parter)")
    timings["case made and sent, invitations delivered"] = round(time.monotonic() - t0, 1)

    t0 = time.monotonic()
    tester = BankIDTester(cluster.bankid_page_url)
    signers = [
        Signer(number, person, login_url=cluster.urls[number % 2], sign_url=cluster.urls[(number + 1) % 2])
        for number, person in enumerate(SIGNERS, start=1)
    ]
    log_in(signers, invitations, tester, uid)
    timings["ten BankID logins"] = round(time.monotonic() - t0, 1)

    t0 = time.monotonic()
    burst(signers, tester, uid)
    timings["ten concurrent signatures"] = round(time.monotonic() - t0, 1)
    done_page = signers[0].browser.get(signers[0].result["next"])
    assert "Tack! Dokumentet är undertecknat" in done_page.text

    # The officer looks through the other instance.
    officer_b = Officer(second, auth=("officer", cluster.settings.officer_password))
    status = officer_b.get(f"{path}/@esign-status").json()
    assert status["state"] == "signed", status
    assert [s["status"] for s in status["signers"]] == ["signed"] * len(SIGNERS)
    serials = [s["certificate_serial"] for s in status["signers"]]
    assert all(serials) and len(set(serials)) == len(SIGNERS), serials

    trail = officer_b.get(f"{path}/@esign-audit").json()
    assert trail["verification"]["ok"], trail["verification"]
    events = Counter(item["event"] for item in trail["items"])
    assert events["completed"] == 1, events
    assert events["archive_timestamped"] == 1, events
    assert events["signed"] == len(SIGNERS), events
    signed_by = Counter(item["actor"] for item in trail["items"] if item["event"] == "signed")
    assert signed_by == Counter(f"signer:{n}" for n in range(1, len(SIGNERS) + 1)), signed_by
    # Each signature records the BankID order its signer approved: no order signed twice or for another.
    order_of = {
        item["actor"]: item["data"].get("order_ref") for item in trail["items"] if item["event"] == "signed"
    }
    assert order_of == {f"signer:{s.number}": s.result["order_ref"] for s in signers}, order_of

    # The document: ten signatures, one chain of revisions, each covering everything before it.
    download = officer_b.http.get(f"{officer_b.api}/{path}/@esign-download", timeout=60)
    assert download.status_code == 200 and download.content.startswith(b"%PDF"), download.status_code
    pdf = download.content
    pdf_path = Path(cluster.base) / "signed.pdf"
    pdf_path.write_bytes(pdf)
    ok, output = qpdf_check(pdf_path)
    assert ok, output
    chain = revision_chain(pdf)
    people = [s for s in chain if not s["timestamp"]]
    assert len(people) == len(SIGNERS), chain
    assert sorted(s["serial"] for s in people) == sorted(serials), (chain, serials)
    revisions = [s["revision"] for s in chain]
    assert revisions == sorted(set(revisions)), f"two signatures in one revision: {chain}"
    for earlier, later in itertools.pairwise(chain):
        assert later["end"] > earlier["end"], (earlier, later)
    # Each covers its whole revision (so every earlier one); only B-LTA's validation data may follow.
    assert all(s["coverage"] in ("ENTIRE_REVISION", "ENTIRE_FILE") for s in chain), chain
    assert chain[-1]["timestamp"], f"the archive timestamp is not the last: {chain[-1]}"
    assert [s["timestamp"] for s in chain].count(True) == 1, chain

    root = x509.load_der_x509_certificate(requests.get(f"{second}/esign-pki/root.crt", timeout=30).content)
    # Both instances publish the one root of the shared CA files (ESIGN_PKI_DIR).
    assert requests.get(f"{first}/esign-pki/root.crt", timeout=30).content == root.public_bytes(Encoding.DER)
    from esign.plone.signing.reports import assess_pdf

    report = assess_pdf(pdf, trust_roots=[root])
    assert [(s.indication, s.level) for s in report.signatures] == [("TOTAL-PASSED", "B-LTA")] * len(
        SIGNERS
    ), [(s.field_name, s.indication, s.sub_indication, s.level) for s in report.signatures]
    assert sorted(s.signer_serial_number for s in report.signatures) == sorted(
        f"PNOSE-{p['personal_number']}" for p in SIGNERS
    )

    # One completion mail per party: ten signers and the officer, from two queue processors.
    t0 = time.monotonic()
    wanted = [p["email"] for p in SIGNERS] + [OFFICER_EMAIL]

    def completion(m: EmailMessage) -> bool:
        subject = str(m["Subject"])
        return m[CASE_HEADER] == uid and (SIGNER_DONE_SUBJECT in subject or OFFICER_DONE_SUBJECT in subject)

    wait_for_mails(cluster.mail_dir, completion, count=len(wanted))
    deadline = time.monotonic() + 30
    while not queue_is_empty(cluster.mail_queue) and time.monotonic() < deadline:
        time.sleep(0.3)
    time.sleep(4)  # one more pass of each queue processor: nothing more must come
    done_mails = [m for m in caught(cluster.mail_dir) if completion(m)]
    got = Counter(re.search(r"[\w.+-]+@[\w.-]+", str(m["To"])).group(0) for m in done_mails)
    assert got == Counter(wanted), got
    timings["completion mails delivered"] = round(time.monotonic() - t0, 1)

    conflicts = conflict_lines(sorted(cluster.log_dir.glob("instance*.log")))
    write_summary(
        "ten-signers",
        {
            "timings_s": {**cluster.timings, **timings},
            "signers": [
                {
                    "signer": s.number,
                    "login_instance": s.login_url,
                    "sign_instance": s.sign_url,
                    "seconds_to_signed": round(s.seconds, 2),
                    "status_answers": dict(Counter(code for code, _ in s.answers)),
                }
                for s in signers
            ],
            "conflicts": dict(conflicts),
            "revisions": chain,
        },
    )


def test_a_signature_that_outlasts_zopes_conflict_retries_is_still_made(cluster, pdf_bytes, write_summary):
    """Five signatures at once through an instance where Zope retries a conflicting request only
    once (``max-conflict-retries 1``), standing in for a burst bigger than the default three
    retries can take: a signature whose request Zope gives up on must still be made, and the
    signer's progress page must not stop. ("Skriv under" is pressed one after the other here;
    the ten-signer test above presses it at once.)"""
    t0 = time.monotonic()
    impatient = cluster.add_instance(max_conflict_retries=1)
    warm_up(cluster, pdf_bytes, [impatient])
    people = SIGNERS[:5]
    uid, path, invitations = send_case(cluster, impatient, pdf_bytes, people, "Hyresavtal (fem parter)")
    tester = BankIDTester(cluster.bankid_page_url)
    signers = [
        Signer(number, person, login_url=impatient, sign_url=impatient)
        for number, person in enumerate(people, start=1)
    ]
    log_in(signers, invitations, tester, uid)
    burst(signers, tester, uid, press_together=False)

    officer = Officer(impatient, auth=("officer", cluster.settings.officer_password))
    status = officer.get(f"{path}/@esign-status").json()
    assert status["state"] == "signed", status
    serials = [s["certificate_serial"] for s in status["signers"]]
    assert all(serials) and len(set(serials)) == len(people), serials
    events = Counter(item["event"] for item in officer.get(f"{path}/@esign-audit").json()["items"])
    assert (events["signed"], events["completed"]) == (len(people), 1), events
    write_summary(
        "outlasting-retries",
        {
            "seconds": round(time.monotonic() - t0, 1),
            "status_answers": {s.number: [code for code, _ in s.answers] for s in signers},
            "conflicts": dict(conflict_lines([cluster.instances[-1].log])),
        },
    )
