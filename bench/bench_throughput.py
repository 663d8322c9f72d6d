"""Benchmark: signatures per second through the real signer journey, and the case queries at scale.

    .venv/bin/python bench/bench_throughput.py [--concurrency 4,8] [--journeys 32]
                                               [--cases 10000,100000] [--skip-journeys | --skip-queries]

Everything runs in this process, like ``make demo`` (``scripts/demo.py``): a throwaway site in a
temporary folder (zope.conf with its own FileStorage and blob directory), Zope served by waitress on
a free loopback port (``--server-threads``, 4 by default, as a zope.conf instance has), the project's
BankID RP API test server (mutual TLS) and its mail catcher. Nothing in the add-on is bypassed.

**Journeys.** For each concurrency level ``N``, ``--journeys`` single-signer cases (a one-page
contract, each for a person of its own) are created and sent by the officer (real ``send_case``:
the signature page, the links, the invitation mails), outside the timing. Then ``N`` threads, each a
signer's browser (``requests``, as ``tests/helpers/journey.py``), take cases from a queue and walk
the journey: the mail's "Hantera ärendet" link → "BankID på annan enhet" → the order approved on the
test server's page at once → "Visa och skriv under" (the review page and the PDF) → "Skriv under" →
the sign order approved at once → collect until signed → "Tack!". The BankID test server cannot tell
whose *auth* order is whose (orders.json has no start tokens), so the start of a login and the
look-up of its order are done one signer at a time (a lock around two requests); everything else,
signing included, runs concurrently. Reported: signatures per second (journeys completed / wall
time), p50/p95 of the whole journey, of "Skriv under" → signed (start of the sign order to the
collect that answers ``complete``), and of that last collect alone (where the PDF is signed,
timestamped and stored). Afterwards every case must be ``signed``; one is validated.
``bench_cluster.py`` walks the same journeys (``Signer``, ``run_journeys``) through two Zope
instances on RelStorage/PostgreSQL.

**Queries.** The catalog is grown to each size in ``--cases`` (cumulative) with cases made through
the real content type (``plone.api.content.create`` as their officer, a minimal one-page PDF in a
blob), then given their state without the costly parts of a real send (no signature page, no
mails): signer records and ``Signer`` local roles as ``send`` makes them, the workflow status set
directly, the role mappings updated and the case reindexed. 10 % drafts, 30 % awaiting signature,
50 % signed, 5 % declined, 5 % expired; two signers each from a pool of people; 100 officers, the
measured one owning ``--officer-cases`` of them at every size. A really sent case is compared with
a bulk one first: the same catalog values for every index that the queries use. At each size:
``cases_for_identity`` in process (the signer's pending query, a person with 5 cases awaiting her),
``GET @@esign-pending`` over HTTP with her signer session, the officer's ``GET @@esign-my-cases``
(all states, and ``?state=awaiting_signature``), the catalog query under it alone, and a manager's
``?all=1`` (every case) with fewer repeats.

The last lines are machine-readable ``RESULT <name> <value>``; ``--json FILE`` writes them all.
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import queue
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(1, str(ROOT / "tests"))

from demo import WSGIServer, write_zope_conf  # noqa: E402 - scripts/demo.py, found through the path above

from helpers import people  # noqa: E402 - tests/helpers, found through the path above
from helpers.pdfs import one_page_pdf  # noqa: E402

LOOPBACK = "127.0.0.1"
OFFICER_PASSWORD = "officer-bench-1"  # noqa: S105 - a throwaway site
ADMIN = ("bench-admin", "bench-admin-secret-1")  # a throwaway site
OTHER_OFFICERS_PASSWORD = "bench-officer-1"  # noqa: S105
STATE_SHARES = (
    ("draft", 0.10),
    ("awaiting_signature", 0.30),
    ("signed", 0.50),
    ("declined", 0.05),
    ("expired", 0.05),
)


RESULTS: dict[str, float | int | str] = {}


def result(name: str, value) -> None:
    RESULTS[name] = value


# -- people and documents ----------------------------------------------------------------------


def personnummer(index: int) -> str:
    """A valid 12-digit personnummer (real date, Luhn check digit), different for each index."""
    born = dt.date(1940, 1, 1) + dt.timedelta(days=index % 25_000)
    return people.personnummer(born, 100 + (index // 25_000) % 900)


def minimal_pdf() -> bytes:
    return one_page_pdf("Avtal")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:8.1f} ms   p95 {percentile(values, 0.95) * 1000:8.1f} ms"


# -- the server ------------------------------------------------------------------------------


class World:
    """The site, its servers and the officer, as the phases share them."""

    def __init__(self, home: Path, stack: ExitStack, *, server_threads: int) -> None:
        from esign.plone.testservers.bankid import BankIDTestServer
        from esign.plone.testservers.mail import MailCatcher
        from helpers.journey import BankIDTester

        self.bankid = BankIDTestServer(home / "bankid").start()
        stack.callback(self.bankid.stop)
        self.mail = MailCatcher(home / "mail").start()
        stack.callback(self.mail.stop)
        os.environ.update(self.bankid.environment())
        os.environ["ESIGN_SMTP_HOST"] = LOOPBACK
        os.environ["ESIGN_SMTP_PORT"] = str(self.mail.smtp_port)
        os.environ["ESIGN_MAIL_QUEUE"] = str(home / "mail-queue")
        # Every virtual signer comes from 127.0.0.1: the per-client limit on BankID orders would
        # refuse them after ten; a real burst comes from many addresses.
        os.environ["ESIGN_BANKID_RATE"] = "off"
        os.environ.pop("MAILHOST_QUEUE_ONLY", None)
        for name in ("no_proxy", "NO_PROXY"):
            os.environ[name] = ",".join(filter(None, (os.environ.get(name), LOOPBACK, "localhost")))
        self.tester = BankIDTester(self.bankid.page_url)

        import esign_site

        conf = write_zope_conf(home)
        self.app = esign_site.open_zope_app(str(conf))
        self.db = self.app._p_jar.db()
        stack.callback(self.db.close)

        import transaction
        from plone import api
        from ZPublisher.WSGIPublisher import publish_module

        from esign.plone.notify import stop_queue_processor

        stack.callback(transaction.abort)
        self.web = WSGIServer(
            publish_module, threads=server_threads, ident="esign-bench", connection_limit=256
        ).start()
        stack.callback(self.web.stop)
        self.app.REQUEST.setServerURL(protocol="http", hostname=LOOPBACK, port=self.web.port)
        started = time.monotonic()
        self.site, _ = esign_site.ensure_site(self.app, site_id="Plone")
        esign_site.ensure_installed(self.site)
        stack.callback(stop_queue_processor, self.site.MailHost)
        esign_site.ensure_officer(password=OFFICER_PASSWORD)
        api.user.create(email="admin@example.se", username=ADMIN[0], password=ADMIN[1])
        api.user.grant_roles(username=ADMIN[0], roles=["Manager"])
        transaction.commit()
        self.portal_url = self.site.absolute_url()
        self.officer = esign_site.OFFICER_ID
        print(f"site {self.portal_url} ready in {time.monotonic() - started:.1f} s", flush=True)

    def sync(self) -> None:
        import transaction

        transaction.abort()
        self.app._p_jar.sync()

    # What run_journeys asks of a world; bench_cluster.ClusterWorld answers the same over HTTP.

    def make_cases(self, people: list[dict], *, title: str) -> list[tuple[str, dict]]:
        return create_sent_cases(self, people, title=title)

    def invitation_links(self, people: list[dict]) -> dict[str, str]:
        return invitation_links(self, people)

    def routes(self, index: int) -> tuple[str, str]:
        """The site addresses the ``index``-th journey logs in and signs through."""
        return self.portal_url, self.portal_url

    def conflict_counts(self) -> Counter:
        """Running totals of the work done again after ZODB conflicts (see :class:`_Retries`)."""
        return Counter({"conflict_retries": RETRIES.count, "signatures_made_again": RETRIES.signing})

    def wait_until_idle(self) -> float:
        return wait_until_idle(self)

    def outcome(self, uids: list[str]) -> tuple[list[str], bool]:
        """Each case's state, and whether the last one's signatures validate."""
        from plone import api

        from esign.plone import api as esign

        self.sync()
        with api.env.adopt_roles(["Manager"]):
            states = [esign.state_of(api.content.get(UID=uid)) for uid in uids]
            report = esign.validate_case(api.content.get(UID=uids[-1]))
        return states, bool(report and report.all_valid)


# -- journeys --------------------------------------------------------------------------------


def create_sent_cases(world: World, people: list[dict], *, title: str) -> list[tuple[str, dict]]:
    """One sent single-signer case per person, with the contract PDF; returns ``(uid, person)``."""
    import esign_site
    import transaction
    from plone import api
    from plone.namedfile.file import NamedBlobFile
    from ZODB.POSException import ConflictError

    from esign.plone import api as esign

    pdf = esign_site.contract_pdf()
    made = []
    for number, person in enumerate(people, start=1):
        for attempt in range(5):
            try:
                with api.env.adopt_user(username=world.officer):
                    case = api.content.create(
                        container=world.site,
                        type="SigningCase",
                        title=f"{title} {number}",
                        information_class="K2",
                        document=NamedBlobFile(pdf, filename="avtal.pdf", contentType="application/pdf"),
                        signers=[dict(person)],
                    )
                    esign.send_case(case)
                    uid = case.UID()
                transaction.commit()
                break
            except ConflictError:
                # A request of the run before may still be finishing on the server.
                transaction.abort()
                if attempt == 4:
                    raise
        made.append((uid, person))
    return made


def wait_until_idle(world: World, *, timeout: float = 600) -> float:
    """Wait until the server has no request left (clients that gave up leave theirs running)."""
    dispatcher = world.web.server.task_dispatcher
    began = time.monotonic()
    while dispatcher.active_count or dispatcher.queue:
        if time.monotonic() - began > timeout:
            break
        time.sleep(0.5)
    return time.monotonic() - began


def invitation_links(world: World, people: list[dict], *, timeout: float = 120) -> dict[str, str]:
    """The "Hantera ärendet" link in each person's invitation (waits for the mail queue)."""
    from helpers.journey import link_in

    wanted = {p["email"] for p in people}
    deadline = time.monotonic() + timeout
    while True:
        links = {}
        for message in world.mail.messages():
            to = str(message["To"])
            address = next((a for a in wanted if a in to), None)
            body = message.get_body(preferencelist=("plain",)).get_content()
            if address and "Hantera ärendet" in body:
                links[address] = link_in(body)
        if len(links) == len(wanted):
            return links
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: only {len(links)} of {len(wanted)} invitations arrived")
        time.sleep(0.5)


def error_text(response) -> str:
    """The message of the signer error page (or the start of the body)."""
    match = re.search(r'class="[^"]*esign-error[^"]*"[^>]*>([^<]*)<', response.text)
    return match.group(1).strip() if match else response.text[:300]


def on_site(url: str, portal_url: str) -> str:
    """``url`` (a link into one instance's site) through the site address ``portal_url``."""
    return re.sub(r"^https?://[^/]+/[^/?]+", portal_url, url)


class Signer:
    """One person's browser through the journey, timing the steps.

    It logs in through ``login_url`` and reviews and signs through ``sign_url`` (both the
    world's site by default; two instances of one site in a cluster: the session is in the ZODB).
    """

    def __init__(
        self,
        world: World,
        login_lock: threading.Lock,
        *,
        login_url: str | None = None,
        sign_url: str | None = None,
    ) -> None:
        from helpers.journey import SignerBrowser

        self.world = world
        self.browser = SignerBrowser(login_url or world.portal_url)
        self.sign_url = sign_url or self.browser.portal_url
        self.login_lock = login_lock
        self.step = "start"
        self.orphans = 0

    def _collect(self, timeout: float = 60) -> tuple[dict, float]:
        """Poll "@@esign-bankid-status" until the order is done; the answer and the last poll's time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            began = time.perf_counter()
            status = self.browser.get("@@esign-bankid-status").json()
            took = time.perf_counter() - began
            if "status" not in status:
                raise AssertionError(f"the collect answered {status}")
            if status["status"] != "pending":
                return status, took
            time.sleep(0.02)
        raise AssertionError("the BankID order never finished")

    def _order_for(self, kind: str, personal_number: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for order in self.world.tester.pending():
                if order["type"] == kind and order["personalNumber"] == personal_number:
                    return order
            time.sleep(0.02)
        raise AssertionError(f"no {kind} order for the signer")

    def journey(self, uid: str, person: dict, link: str) -> dict:
        from helpers.journey import hidden

        tester, browser = self.world.tester, self.browser
        began = time.perf_counter()
        self.step = "link"
        landing = browser.get(on_site(link, browser.portal_url))
        assert landing.url.endswith("/@@esign-login"), landing.url
        page = browser.get("@@esign-login?val=medborgare")
        self.step = "login start"
        with self.login_lock:
            before = {o["orderRef"] for o in tester.pending() if o["type"] == "auth"}
            start = browser.post(
                "@@esign-bankid-start",
                {"_esign_csrf": hidden(page.text, "_esign_csrf"), "purpose": "login", "mode": "qr"},
                allow_redirects=False,
            )
            assert start.status_code == 302, (start.status_code, error_text(start))
            new = [o for o in tester.pending() if o["type"] == "auth" and o["orderRef"] not in before]
        # A start that hit a ZODB conflict is run again by Zope: BankID then has two orders, and
        # the browser's flow is the second one (orders.json lists them oldest first).
        assert new, "no BankID order was started"
        order = new[-1]
        for orphan in new[:-1]:
            self.orphans += 1
            tester.cancel(orphan)
        browser.get("@@esign-bankid")
        self.step = "login approve"
        tester.approve(order, personal_number=person["personal_number"], name=person["name"])
        self.step = "login collect"
        login, _ = self._collect()
        assert login["status"] == "complete", login
        self.step = "review"
        browser.portal_url = self.sign_url
        review = browser.get(on_site(login["next"], self.sign_url))
        assert "Skriv under" in review.text, review.url
        document = browser.get(f"@@esign-signer-document?case={uid}")
        assert document.content.startswith(b"%PDF")

        self.step = "sign start"
        pressed = time.perf_counter()
        start = browser.post(
            "@@esign-bankid-start",
            {
                "_esign_csrf": hidden(review.text, "_esign_csrf"),
                "purpose": "sign",
                "mode": "qr",
                "case": uid,
            },
            allow_redirects=False,
        )
        assert start.status_code == 302, (start.status_code, error_text(start))
        browser.get("@@esign-bankid")
        self.step = "sign approve"
        order = self._order_for("sign", person["personal_number"])
        tester.approve(order, personal_number=person["personal_number"], name=person["name"])
        self.step = "sign collect"
        signed, last_collect = self._collect()
        assert signed["status"] == "complete", signed
        sign_step = time.perf_counter() - pressed
        self.step = "done"
        done = browser.get(signed["next"])
        assert "Tack!" in done.text, done.url
        return {"journey": time.perf_counter() - began, "sign": sign_step, "collect": last_collect}


#: How run_journeys names the counts of World.conflict_counts() (others are printed by their key).
CONFLICT_LABELS = {
    "conflict_retries": "requests re-run by Zope after a ZODB conflict",
    "conflict_gave_up": "requests Zope gave up on",
    "signatures_made_again": "signatures made again after a collision",
}


def run_journeys(
    world: World,
    *,
    concurrency: int,
    journeys: int,
    offset: int,
    verbose: bool = False,
    prefix: str = "journeys",
) -> None:
    """``journeys`` single-signer cases, then ``concurrency`` signers walking them; RESULT ``prefix.nN.*``.

    ``world`` is a :class:`World` or anything with its journey methods (``make_cases``,
    ``invitation_links``, ``routes``, ``conflict_counts``, ``wait_until_idle``, ``outcome``,
    ``tester``, ``portal_url``), as ``bench_cluster.ClusterWorld``.
    """
    people = [
        {
            "name": f"Signe Testsson{offset + i}",
            "personal_number": personnummer(offset + i),
            "email": f"signer{offset + i}@example.se",
        }
        for i in range(journeys + 1)
    ]
    key = f"{prefix}.n{concurrency}"
    started = time.monotonic()
    made = world.make_cases(people, title=f"Avtal N={concurrency}")
    links = world.invitation_links(people)
    print(
        f"N={concurrency}: {len(made)} cases created and sent, invitations caught, "
        f"in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    login_lock = threading.Lock()

    def signer_for(index: int) -> Signer:
        login_url, sign_url = world.routes(index)
        return Signer(world, login_lock, login_url=login_url, sign_url=sign_url)

    # One journey alone first: imports, caches and the first connections are not part of the run.
    warm_uid, warm_person = made[0]
    try:
        signer_for(0).journey(warm_uid, warm_person, links[warm_person["email"]])
    except Exception as exc:
        print(f"N={concurrency}: the warm-up journey failed: {type(exc).__name__}: {exc}"[:400], flush=True)

    # People sign in their own order, not in the order the cases were sent (which would make
    # nearly every pair of signatures collide on the first entry of the catalog's
    # awaiting_signature set); the same order on every run.
    order = list(enumerate(made[1:], start=1))
    random.Random(concurrency).shuffle(order)  # noqa: S311 - an order, not a secret
    work: queue.Queue = queue.Queue()
    for index, (uid, person) in order:
        work.put((index, uid, person))
    timings: list[dict] = []
    errors: list[str] = []
    orphans: list[int] = []

    def signer_thread() -> None:
        while True:
            try:
                index, uid, person = work.get_nowait()
            except queue.Empty:
                return
            # A browser of its own for every person: new cookies, new connections.
            signer = signer_for(index)
            try:
                timings.append(signer.journey(uid, person, links[person["email"]]))
                if verbose:
                    print("   journey", {k: round(v, 3) for k, v in timings[-1].items()}, flush=True)
            except Exception as exc:  # a failed journey is counted and reported, the run goes on
                errors.append(f"at {signer.step}: {type(exc).__name__}: {exc}"[:400])
            orphans.append(signer.orphans)

    threads = [threading.Thread(target=signer_thread, name=f"signer-{n}") for n in range(concurrency)]
    conflicts_before = world.conflict_counts()
    wall = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - wall
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    left_over = world.wait_until_idle()
    # After the server is idle: the counts include what the abandoned requests did.
    conflicts = world.conflict_counts()
    conflicts.subtract(conflicts_before)
    if left_over > 1:
        print(
            f"N={concurrency}: the server went on for {left_over:.0f} s after the last journey ended "
            "(requests whose signers had given up after 30 s)",
            flush=True,
        )
    result(f"{key}.server_busy_after_s", round(left_over, 1))

    states, valid = world.outcome([uid for uid, _ in made])
    signed = states.count("signed")
    rate = len(timings) / wall
    redone = "; ".join(
        f"{conflicts[name]} {label}" for name, label in CONFLICT_LABELS.items() if name in conflicts
    )
    print(
        f"N={concurrency}: {len(timings)} of {len(made) - 1} journeys in {wall:.1f} s = "
        f"{rate:.2f} signatures/s; {len(errors)} failed; {redone}; "
        f"{sum(orphans)} BankID orders started twice; cases signed {signed}/{len(made)}; "
        f"last case validates: {valid}; load average at the end {load}"
    )
    others = sorted(name for name in conflicts if name not in CONFLICT_LABELS and conflicts[name])
    if others:
        print("   " + ", ".join(f"{name} {conflicts[name]}" for name in others))
    for line in errors[:8]:
        print(f"   failed: {line}")
    result(f"{key}.signatures_per_s", round(rate, 2))
    result(f"{key}.wall_s", round(wall, 1))
    result(f"{key}.completed", len(timings))
    result(f"{key}.failed", len(errors))
    for name in [*(n for n in CONFLICT_LABELS if n in conflicts), *others]:
        result(f"{key}.{name.replace(' ', '_')}", conflicts[name])
    result(f"{key}.orders_started_twice", sum(orphans))
    result(f"{key}.cases_signed", f"{signed}/{len(made)}")
    result(f"{key}.load", load)
    for step, label in (
        ("journey", "whole journey      "),
        ("sign", '"Skriv under"→signed'),
        ("collect", "signing collect    "),
    ):
        values = [t[step] for t in timings]
        if not values:
            continue
        print(f"   {label} {summary(values)}")
        result(f"{key}.{step}.p50_ms", round(statistics.median(values) * 1000, 1))
        result(f"{key}.{step}.p95_ms", round(percentile(values, 0.95) * 1000, 1))
    if not valid:
        FAILURES.append(f"N={concurrency}: the last signed case does not validate")
    if errors:
        FAILURES.append(f"N={concurrency}: {len(errors)} journeys failed")
    if signed != len(made):
        FAILURES.append(f"N={concurrency}: {len(made) - signed} cases are not signed")


class _Retries(logging.Handler):
    """Counts the work done again after a ZODB ConflictError.

    ``count``: requests Zope ran again (``HTTPRequest.retry``); ``signing``: signatures that
    ``journey._finish`` made again on top of the other transaction's revision (it logs each).
    """

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.count = 0
        self.signing = 0
        self._lock = threading.Lock()

    def install(self) -> None:
        from ZPublisher.HTTPRequest import HTTPRequest

        original = HTTPRequest.retry

        def retry(request):
            with self._lock:
                self.count += 1
            return original(request)

        HTTPRequest.retry = retry
        esign_logger = logging.getLogger("esign.plone")
        esign_logger.addHandler(self)
        if esign_logger.getEffectiveLevel() > logging.INFO:
            esign_logger.setLevel(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        if "collided" in record.getMessage():
            with self._lock:
                self.signing += 1


RETRIES = _Retries()
FAILURES: list[str] = []


# -- queries at scale --------------------------------------------------------------------------


class Catalog:
    """Grows the catalog with cases through the content type, cheaply (see the module docstring)."""

    FOLDER_SIZE = 1000

    def __init__(self, world: World, *, officer_cases: int, first_size: int, seed: int = 6) -> None:
        from plone import api

        self.world = world
        self.rng = random.Random(seed)  # noqa: S311 - the same catalog on every run
        self.pdf = minimal_pdf()
        self.count = 0
        self.officers = [world.officer] + [f"handlaggare-{n:02d}" for n in range(1, 100)]
        for name in self.officers[1:]:
            api.user.create(
                email=f"{name}@example.se", username=name, password=OTHER_OFFICERS_PASSWORD, roles=["Member"]
            )
            api.user.grant_roles(username=name, roles=["SigningOfficer"])
        # The measured officer owns ``officer_cases``, all among the first ``first_size``.
        self.officer_every = max(1, first_size // officer_cases) if officer_cases else 0
        self.officer_cases = officer_cases
        self.owned = 0
        self.people = max(1000, first_size)  # signers are drawn from this many people
        workflow = api.portal.get_tool("portal_workflow")
        (self.workflow_id,) = workflow.getChainForPortalType("SigningCase")
        self.workflow = workflow[self.workflow_id]
        self.workflow_tool = workflow

    def _owner(self, index: int) -> str:
        if self.officer_every and index % self.officer_every == 0 and self.owned < self.officer_cases:
            self.owned += 1
            return self.world.officer
        return self.officers[1 + index % (len(self.officers) - 1)]

    def _state(self) -> str:
        draw, total = self.rng.random(), 0.0
        for state, share in STATE_SHARES:
            total += share
            if draw < total:
                return state
        return STATE_SHARES[-1][0]

    def _folder(self, index: int):
        from plone import api

        name = f"arenden-{index // self.FOLDER_SIZE:04d}"
        site = self.world.site
        if name not in site.objectIds():
            with api.env.adopt_roles(["Manager"]):
                api.content.create(container=site, type="Folder", id=name, title=name)
        return site[name]

    def make(self, index: int, *, owner: str, state: str, signers: list[dict]):
        from DateTime import DateTime
        from persistent.list import PersistentList
        from plone import api
        from plone.namedfile.file import NamedBlobFile

        from esign.plone.content.identifiers import identity_key
        from esign.plone.content.signing_case import PENDING, SIGNED, SignerRecord
        from esign.plone.workflow import cases

        with api.env.adopt_user(username=owner):
            case = api.content.create(
                container=self._folder(index),
                type="SigningCase",
                id=f"arende-{index:06d}",
                safe_id=False,
                title=f"Avtal {index:06d} om tjänster",
                case_number=f"RS {2025 - index % 5}-{index:06d}",
                information_class="K2",
                document=NamedBlobFile(self.pdf, filename="avtal.pdf", contentType="application/pdf"),
                signers=signers,
            )
        if state == "draft":
            return case
        # What "send" leaves behind in the catalog, without the signature page and the mails.
        salt = cases.hash_salt()
        records = PersistentList()
        for position, row in enumerate(case.signers, start=1):
            record = SignerRecord(
                signer_id=f"{index:06d}{position:02d}",
                position=position,
                name=row["name"],
                email=row["email"],
                personal_number=row.get("personal_number"),
                identity_key=identity_key(salt=salt, personal_number=row.get("personal_number")),
            )
            if state == "signed":
                record.status = SIGNED
            elif state == "declined" and position == 1:
                record.status = "declined"
            else:
                record.status = PENDING
            records.append(record)
            case.manage_setLocalRoles(record.principal_id, ["Signer"])
        case.signer_records = records
        case.signed_document = None
        self.workflow_tool.setStatusOf(
            self.workflow_id,
            case,
            {
                "review_state": state,
                "action": "bench",
                "actor": owner,
                "time": DateTime(),
                "comments": "",
            },
        )
        self.workflow.updateRoleMappingsFor(case)
        case.reindexObject()
        return case

    def grow_to(self, size: int) -> float:
        import transaction

        began = time.monotonic()
        while self.count < size:
            index = self.count
            signers = []
            for position in (1, 2):
                who = self.rng.randrange(self.people)
                signers.append(
                    {
                        "name": f"Person {who} Andersson",
                        "personal_number": personnummer(100_000 + who),
                        "email": f"person{who}-{position}@example.se",
                    }
                )
            self.make(index, owner=self._owner(index), state=self._state(), signers=signers)
            self.count += 1
            if self.count % 500 == 0:
                transaction.commit()
                self.world.app._p_jar.cacheGC()
            if self.count % 5000 == 0:
                elapsed = time.monotonic() - began
                print(f"   {self.count} cases in the catalog ({elapsed:.0f} s for this batch)", flush=True)
        transaction.commit()
        return time.monotonic() - began


INDEXES_COMPARED = ("portal_type", "review_state", "Creator", "allowedRolesAndUsers", "esign_signer_keys")


def check_bulk_matches_real(world: World, catalog: Catalog) -> None:
    """A bulk case and a really sent one give the same catalog values for the indexes the queries use."""
    import transaction
    from plone import api

    from esign.plone import api as esign

    signers = [{"name": "Vera Verklig", "personal_number": personnummer(99_999), "email": "vera@example.se"}]
    with api.env.adopt_user(username=world.officer):
        real = api.content.create(
            container=world.site,
            type="SigningCase",
            title="Verkligt skickat",
            information_class="K2",
            document=pdf_file(catalog.pdf),
            signers=[dict(s) for s in signers],
        )
        esign.send_case(real)
    bulk = catalog.make(99_999_999, owner=world.officer, state="awaiting_signature", signers=signers)
    transaction.commit()
    pc = api.portal.get_tool("portal_catalog")
    values = {}
    for case in (real, bulk):
        rid = pc.getrid("/".join(case.getPhysicalPath()))
        data = pc.getIndexDataForRID(rid)
        values[case.getId()] = {
            name: sorted(data[name]) if isinstance(data[name], (list, tuple)) else data[name]
            for name in INDEXES_COMPARED
        }
    real_values, bulk_values = values[real.getId()], values[bulk.getId()]
    if real_values != bulk_values:
        raise SystemExit(f"bench: bulk cases index differently from real ones:\n{real_values}\n{bulk_values}")
    with api.env.adopt_roles(["Manager"]):
        api.content.delete(objects=[real, bulk], check_linkintegrity=False)
    transaction.commit()
    print("   a bulk case indexes like a really sent one: " + ", ".join(INDEXES_COMPARED), flush=True)


def pdf_file(data: bytes):
    from plone.namedfile.file import NamedBlobFile

    return NamedBlobFile(data, filename="avtal.pdf", contentType="application/pdf")


def timed(call, repeat: int) -> list[float]:
    values = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        values.append(time.perf_counter() - began)
    return values


def run_queries(world: World, *, sizes: list[int], repeat: int, officer_cases: int) -> None:
    import requests
    import transaction
    from plone import api

    from esign.plone import api as esign
    from esign.plone.workflow import cases

    catalog = Catalog(world, officer_cases=officer_cases, first_size=sizes[0])
    transaction.commit()
    check_bulk_matches_real(world, catalog)

    # Tilda: five cases really sent to her, made before the bulk (the oldest in the catalog).
    tilda = {"name": "Tilda Testare", "personal_number": personnummer(77_777), "email": "tilda@example.se"}
    for number in range(5):
        with api.env.adopt_user(username=world.officer):
            case = api.content.create(
                container=world.site,
                type="SigningCase",
                title=f"Tildas avtal {number}",
                information_class="K2",
                document=pdf_file(catalog.pdf),
                signers=[dict(tilda)],
            )
            esign.send_case(case)
    transaction.commit()

    from helpers.journey import SignerBrowser

    def tilda_logs_in() -> SignerBrowser:
        # Growing the catalog takes longer than a signer session lives idle (15 minutes).
        browser = SignerBrowser(world.portal_url)
        browser.get("@@esign-login?val=medborgare")
        answer = browser.login_with_bankid(
            world.tester, personal_number=tilda["personal_number"], name=tilda["name"]
        )
        assert answer["status"] == "complete", answer
        return browser

    officer = requests.Session()
    officer.auth = (world.officer, OFFICER_PASSWORD)
    admin = requests.Session()
    admin.auth = ADMIN

    for size in sizes:
        print(f"queries: growing the catalog to {size} cases", flush=True)
        before = catalog.count
        took = catalog.grow_to(size)
        world.sync()
        rate = (size - before) / took if took else 0.0
        print(f"   grown in {took:.0f} s ({rate:.0f} cases/s through the content type)", flush=True)
        result(f"queries.{size}.create_cases_per_s", round(rate, 1))
        tilda_browser = tilda_logs_in()
        pc = api.portal.get_tool("portal_catalog")
        total = len(pc.unrestrictedSearchResults(portal_type="SigningCase"))
        mine = len(pc.unrestrictedSearchResults(portal_type="SigningCase", Creator=world.officer))
        print(f"   catalog: {total} SigningCase entries; the measured officer owns {mine}", flush=True)

        def pending_query():
            found = cases.cases_for_identity(personal_number=tilda["personal_number"])
            assert len(found) == 5, len(found)

        def pending_page(tilda_browser=tilda_browser):
            page = tilda_browser.get("@@esign-pending")
            assert page.status_code == 200 and "Tildas avtal 4" in page.text

        def dashboard(params: str = "", http=officer, expect: str = "template-esign-my-cases"):
            def call():
                page = http.get(f"{world.portal_url}/@@esign-my-cases{params}", timeout=3600)
                assert page.status_code == 200 and expect in page.text, (page.status_code, page.url)

            return call

        def dashboard_catalog(expected=mine):
            with api.env.adopt_user(username=world.officer):
                brains = api.content.find(
                    portal_type="SigningCase",
                    Creator=world.officer,
                    sort_on="modified",
                    sort_order="descending",
                )
                assert len(brains) == expected

        measurements = [
            ("pending_query", "cases_for_identity (5 pending)     ", pending_query, repeat),
            ("pending_page", "GET @@esign-pending (signer)       ", pending_page, repeat),
            ("dashboard_catalog", "dashboard's catalog query alone    ", dashboard_catalog, repeat),
            ("dashboard", f"GET @@esign-my-cases ({mine} own)   ", dashboard(), repeat),
            (
                "dashboard_awaiting",
                "GET @@esign-my-cases?state=awaiting",
                dashboard("?state=awaiting_signature"),
                repeat,
            ),
            (
                "dashboard_all",
                f"GET @@esign-my-cases?all=1 ({total})",
                dashboard("?all=1", http=admin),
                max(1, repeat // 10) if size > 20_000 else max(3, repeat // 4),
            ),
        ]
        for key, label, measured, times in measurements:
            measured()  # once to warm the caches
            values = timed(measured, times)
            transaction.abort()
            print(f"   {label}  {summary(values)}  (n={times})", flush=True)
            result(f"queries.{size}.{key}.p50_ms", round(statistics.median(values) * 1000, 1))
            result(f"queries.{size}.{key}.p95_ms", round(percentile(values, 0.95) * 1000, 1))
        result(f"queries.{size}.officer_cases", mine)
        result(f"queries.{size}.catalog_cases", total)
        data_fs = Path(world.db.storage.getName())
        if data_fs.exists():
            result(f"queries.{size}.data_fs_mb", round(data_fs.stat().st_size / 1e6, 1))


# -- main ------------------------------------------------------------------------------------------


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        (
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        "0",
    )
    from importlib.metadata import version

    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(int(memory) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "plone": version("Products.CMFPlone"),
        "zope": version("Zope"),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Signatures per second through the signer journey, and the case queries at scale.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Writes nothing outside a temporary folder unless --keep or --json is given.",
    )
    parser.add_argument("--concurrency", default="4,8", help="signer threads per run (default: %(default)s)")
    parser.add_argument(
        "--journeys", type=int, default=32, help="timed journeys per concurrency level (default: %(default)s)"
    )
    parser.add_argument(
        "--cases",
        default="10000,100000",
        help="catalog sizes for the queries, grown cumulatively (default: %(default)s)",
    )
    parser.add_argument("--repeat", type=int, default=20, help="repeats of each query (default: %(default)s)")
    parser.add_argument(
        "--officer-cases",
        type=int,
        default=500,
        help="cases the measured officer owns, at every catalog size (default: %(default)s)",
    )
    parser.add_argument(
        "--server-threads", type=int, default=4, help="waitress worker threads (default: %(default)s)"
    )
    parser.add_argument("--skip-journeys", action="store_true", help="only the queries")
    parser.add_argument("--skip-queries", action="store_true", help="only the journeys")
    parser.add_argument("--verbose", action="store_true", help="print every journey's times")
    parser.add_argument("--json", type=Path, help="write the RESULT values to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary site folder")
    args = parser.parse_args(argv)

    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    sizes = sorted(int(x) for x in args.cases.split(",") if x.strip())
    home = Path(tempfile.mkdtemp(prefix="esign-bench-throughput-"))
    os.environ["ESIGN_PKI_DIR"] = str(home / "esign-pki")
    os.environ.pop("ESIGN_CA_PASSPHRASE", None)
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    for key, value in info.items():
        result(f"machine.{key}", value)
    try:
        with ExitStack() as stack:
            world = World(home, stack, server_threads=args.server_threads)
            RETRIES.install()
            result("server_threads", args.server_threads)
            if not args.skip_journeys:
                offset = 0
                for level in levels:
                    run_journeys(
                        world, concurrency=level, journeys=args.journeys, offset=offset, verbose=args.verbose
                    )
                    offset += args.journeys + 1
            if not args.skip_queries:
                run_queries(world, sizes=sizes, repeat=args.repeat, officer_cases=args.officer_cases)
    finally:
        if args.keep:
            print(f"temporary site kept in {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    for name, value in RESULTS.items():
        print(f"RESULT {name} {value}")
    if args.json:
        args.json.write_text(json.dumps(RESULTS, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for failure in FAILURES:
        print(f"bench: {failure}", file=sys.stderr)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
