"""Who may pass which door: every view and endpoint × every role × every state of a case, over real HTTP.

The expectations are the product's intent, written as a table in ``helpers/matrix.py``: officers
see their own cases, managers and site administrators every case, signers (anonymous to Plone,
holding a signer session) only their own case and only while it awaits them (plus the download
once it is signed), nothing is editable from awaiting_signature on, and anonymous visitors see
only the public doors. A cell where the product differs is a strict xfail naming the bug, so the
suite stays green and the cell turns red when the bug is fixed (remove the entry then).

Also here: CSRF (a POST without its token is refused and changes nothing), IDOR (another person's
case reads exactly as a case that does not exist), guessed, expired and used link tokens, no
personnummer in any address the product writes, and the security headers of the signer pages.

One case per state is built once for the class (committed, in the functional layer); the two
signers log in once, with BankID against the project's test server.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import uuid

import pytest
import requests

from esign.plone.testservers.bankid import BankIDTestServer
from esign.plone.testservers.oidc import OIDCTestProvider
from helpers import matrix
from helpers.journey import BankIDTester
from helpers.matrix import ALLOWED, DOORS, DOORS_BY_ID, NO_CASE, REFUSED, ROLES, STATES, Call
from helpers.site import ANNA, BERTIL


def _restoring_environment(names):
    saved = {name: os.environ.get(name) for name in names}

    def restore():
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    return restore


@pytest.fixture(scope="module")
def bankid_server(tmp_path_factory):
    server = BankIDTestServer(tmp_path_factory.mktemp("bankid-matrix")).start()
    restore = _restoring_environment(server.environment())
    os.environ.update(server.environment())
    yield server
    server.stop()
    restore()


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    provider = OIDCTestProvider(
        clients={"esign-plone": {"secret": "esign-plone-secret", "redirect_uris": ["http://localhost:*"]}},
        key_dir=tmp_path_factory.mktemp("oidc-matrix"),
    ).start()
    environment = {
        "ESIGN_OIDC_ISSUER": provider.issuer,
        "ESIGN_OIDC_CLIENT_ID": "esign-plone",
        "ESIGN_OIDC_CLIENT_SECRET": "esign-plone-secret",
    }
    restore = _restoring_environment(environment)
    os.environ.update(environment)
    yield provider
    provider.stop()
    restore()


def _known(gaps: dict, key) -> list:
    """A strict xfail for a known gap: the test turns red when the gap is closed."""
    return [pytest.mark.xfail(strict=True, reason=gaps[key])] if key in gaps else []


def _cell(door, role, state):
    reason = matrix.discrepancy(door.id, role, state)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(door, role, state, id=f"{door.id} | {role} | {state}", marks=marks)


CELLS = [_cell(door, role, state) for door, role, state in matrix.cells()]

FORGERIES = [
    pytest.param(f, id=f"{f.door.id} as {f.role}", marks=_known(matrix.CSRF_GAPS, f.door.id))
    for f in matrix.forgeries()
]

IDOR_DOORS = [door for door in DOORS if door.idor]


def _header_checks():
    for door in DOORS:
        checks = []
        if door.signer_page:
            checks += ["framing", "nosniff", "referrer", "csp"]
        elif door.personal and matrix.sample_call(door).rest:
            checks += ["nosniff"]
        if door.personal or door.signer_page:
            checks.append("no-store")
        for check in checks:
            marks = _known(matrix.HEADER_GAPS, (door.id, check))
            yield pytest.param(door, check, id=f"{door.id} {check}", marks=marks)


HEADER_CHECKS = list(_header_checks())
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)


def _assert_scripts_allowed_only_by_policy(response, where: str) -> None:
    """A signer page's policy allows no inline script but its own, which carries the nonce."""
    policy = dict(
        [*part.split(" ", 1), ""][:2]
        for part in (p.strip() for p in response.headers.get("Content-Security-Policy", "").split(";"))
        if part
    )
    assert "'unsafe-inline'" not in policy.get("script-src", "'unsafe-inline'"), where
    assert policy.get("object-src") == "'none'" and "frame-ancestors" in policy, where
    nonces = re.findall(r"'nonce-([^']+)'", policy["script-src"])
    assert len(nonces) == 1, where
    for attributes in SCRIPT_TAG.findall(response.text):
        if "src=" in attributes:
            source = re.search(r'src="([^"]*)"', attributes).group(1)
            assert source.startswith(("/", response.url.split("/@@")[0].split("/++")[0])), (where, source)
        else:
            assert f'nonce="{nonces[0]}"' in attributes, (where, attributes)


REFERRER_POLICIES = ("no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin")


def _number_forms(number: str) -> tuple[str, ...]:
    """A personnummer as people and systems write it: 12 digits, with a dash, 10 digits."""
    return (number, f"{number[:8]}-{number[8:]}", number[2:], f"{number[2:8]}-{number[8:]}")


PERSONNUMMER = re.compile(
    "|".join(
        [re.escape(form) for person in (ANNA, BERTIL) for form in _number_forms(person["personal_number"])]
        # Any other: (century) YYMMDD (day + 60 for a samordningsnummer), separator, four digits.
        + [
            r"(?<![0-9A-Za-z])(?:19|20)?\d\d(?:0[1-9]|1[0-2])(?:[0-2]\d|3[01]|[6-8]\d|9[01])[-+]?\d{4}(?![0-9A-Za-z])"
        ]
    )
)
_ADDRESS = re.compile(r"""(?:href|src|action|data-[\w-]*url)\s*=\s*["']([^"']*)["']""", re.I)


def _addresses(response: requests.Response) -> list[str]:
    """The addresses an answer hands on: its redirect, its links and forms, the URLs in its JSON."""
    found = [response.headers["Location"]] if "Location" in response.headers else []
    kind = response.headers.get("Content-Type", "")
    if kind.startswith("text/html"):
        found += _ADDRESS.findall(response.text)
    elif kind.startswith("application/json"):
        found += [v for v in _strings(response.json()) if "://" in v or v.startswith("/")]
    return found


def _strings(data) -> list[str]:
    if isinstance(data, dict):
        return [s for value in data.values() for s in _strings(value)]
    if isinstance(data, list):
        return [s for value in data for s in _strings(value)]
    return [data] if isinstance(data, str) else []


def _same_answer(response: requests.Response, *uids: str) -> tuple:
    """What a caller can tell from an answer: status, type and body, with the UID asked for blanked."""
    body = response.text
    for uid in uids:
        body = body.replace(uid, "<uid>")
    return response.status_code, response.headers.get("Content-Type", ""), body


class TestAuthorizationMatrix:
    @pytest.fixture(scope="class")
    def world(self, functional_portal_class, bankid_server, idp):
        return matrix.World(functional_portal_class, BankIDTester(bankid_server.page_url)).build()

    # -- the table covers every door -------------------------------------------------------------

    def test_every_door_the_add_on_registers_has_a_row_in_the_matrix(self, world):
        registered = matrix.registered_doors()
        covered = {door.registration for door in DOORS if door.registration}
        assert registered, "no doors found: the enumeration is broken"
        assert not registered - covered, f"doors without a row in helpers/matrix.py: {registered - covered}"
        assert not covered - registered, (
            f"rows for doors that are no longer registered: {covered - registered}"
        )

    # -- the matrix ------------------------------------------------------------------------------

    @pytest.mark.parametrize(("door", "role", "state"), CELLS)
    def test_cell(self, world, door, role, state):
        before = world.snapshot() if door.destructive and door.expected(role, state) == REFUSED else None
        response = world.answer(door, role, state)
        got = matrix.outcome(response, refused_also=door.refused_also)
        assert got == door.expected(role, state), (
            f"{response.request.method} {response.request.url} as {role}: "
            f"{response.status_code} {response.headers.get('Location', '')} {response.text[:300]}"
        )
        if before is not None:
            assert world.snapshot()["cases"] == before["cases"], "a refused call changed a case"

    # -- CSRF ------------------------------------------------------------------------------------

    @pytest.mark.parametrize("token", ["missing", "wrong"])
    @pytest.mark.parametrize("forgery", FORGERIES)
    def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(self, world, forgery, token):
        door = forgery.door
        case = None if forgery.state == NO_CASE else world.case_for(door, forgery.role, forgery.state)
        session = world.log_in(ANNA) if forgery.own_session else None
        before = world.snapshot()

        forged = world.knock(forgery.role, door.build(world, case), csrf=token, session=session)

        assert forged.status_code == 403, (forged.status_code, forged.text[:300])
        assert world.snapshot() == before
        if forgery.control is not None:
            genuine = world.knock(forgery.role, forgery.control(world, case), session=session)
            assert genuine.status_code not in (401, 403), (genuine.status_code, genuine.text[:300])
            if forgery.own_session:
                assert world.snapshot()["stores"]["sessions"] == before["stores"]["sessions"] - 1
        if door.starts_bankid:
            world.cancel_bankid_orders()

    def test_an_officer_logged_in_with_a_cookie_cannot_be_made_to_remind_by_a_forged_post(self, world):
        browser = requests.Session()
        login = browser.post(
            f"{world.portal_url}/login",
            data={
                "__ac_name": "officer",
                "__ac_password": matrix.PASSWORDS["owner"][1],
                "buttons.login": "1",
            },
            timeout=30,
        )
        assert "__ac" in browser.cookies, login.status_code
        case = world.cases["awaiting_signature"]
        before = world.snapshot()

        # What a form on another site can send: text/plain, no custom header, the cookie rides along.
        forged = browser.post(
            f"{world.api_url}/{case.id}/@esign-remind",
            data="{}",
            headers={"Content-Type": "text/plain", "Accept": "application/json"},
            timeout=30,
        )

        assert forged.status_code == 403, (forged.status_code, forged.text[:300])
        assert world.snapshot() == before

    # -- IDOR ------------------------------------------------------------------------------------

    @pytest.mark.parametrize("state", STATES)
    @pytest.mark.parametrize("door", IDOR_DOORS, ids=lambda door: door.id)
    def test_another_persons_case_reads_exactly_like_a_case_that_does_not_exist(self, world, door, state):
        victim = world.disposable(state) if door.destructive and state == "awaiting_signature" else None
        victim = victim or world.cases[state]
        nowhere = dataclasses.replace(victim, uid=uuid.uuid4().hex)
        before = world.snapshot()

        theirs = world.knock("other_signer", door.build(world, victim))
        missing = world.knock("other_signer", door.build(world, nowhere))

        assert theirs.status_code == 404, (theirs.status_code, theirs.text[:300])
        assert _same_answer(theirs, victim.uid) == _same_answer(missing, nowhere.uid)
        assert world.snapshot()["cases"] == before["cases"]

    @pytest.mark.parametrize("door", IDOR_DOORS, ids=lambda door: door.id)
    def test_a_signer_gets_nothing_from_bertils_case_with_her_own_session(self, world, door):
        victim = world.other_case
        nowhere = dataclasses.replace(victim, uid=uuid.uuid4().hex)
        before = world.snapshot()

        theirs = world.knock("signer", door.build(world, victim))
        missing = world.knock("signer", door.build(world, nowhere))

        assert theirs.status_code == 404, (theirs.status_code, theirs.text[:300])
        assert _same_answer(theirs, victim.uid) == _same_answer(missing, nowhere.uid)
        assert world.snapshot()["cases"] == before["cases"]

    # -- link tokens -----------------------------------------------------------------------------

    def test_guessed_expired_and_used_link_tokens_all_get_the_same_refusal(self, world):
        link = f"{world.portal_url}/@@esign-link"
        tokens = {
            "guessed": secrets.token_urlsafe(24),
            "expired": world.expired_link,
            "used": world.links["signed"],  # the case was signed: its links died with it
            "declined": world.links["declined"],
            "expired case": world.links["expired"],
            "overlong": "A" * 500,
            "empty": "",
        }
        valid = world.knock(
            "anonymous", Call(method="GET", url=link, params={"t": world.links["awaiting_signature"]})
        )
        assert valid.status_code == 302 and valid.headers["Location"].endswith("/@@esign-login")

        answers = {
            name: world.knock("anonymous", Call(method="GET", url=link, params={"t": token}))
            for name, token in tokens.items()
        }
        answers["absent"] = world.knock("anonymous", Call(method="GET", url=link))

        assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(answers, 404)
        assert len({_same_answer(a) for a in answers.values()}) == 1
        assert all(matrix.SESSION_COOKIE not in a.headers.get("Set-Cookie", "") for a in answers.values())

    def test_a_rest_login_with_a_dead_link_is_refused_like_an_unknown_one(self, world):
        def start(link: str) -> requests.Response:
            call = Call(
                method="POST",
                url=f"{world.api_url}/@esign-login",
                json={"mode": "qr", "link": link},
                rest=True,
                esign_csrf=True,
            )
            return world.knock("anonymous", call)

        answers = [start(t) for t in (secrets.token_urlsafe(24), world.expired_link, world.links["signed"])]
        assert [a.status_code for a in answers] == [404, 404, 404]
        assert len({_same_answer(a) for a in answers}) == 1
        assert world.tester.pending() == []  # no BankID order was started for a dead link
        assert start(world.links["awaiting_signature"]).status_code == 200
        world.cancel_bankid_orders()

    # -- what the answers show -------------------------------------------------------------------

    def test_no_address_the_product_writes_carries_a_personnummer(self, world):
        scanned = 0
        for door, role, state in matrix.cells():
            if door.destructive:
                continue
            response = world.answer(door, role, state)
            if matrix.outcome(response, refused_also=door.refused_also) != ALLOWED:
                continue
            for url in _addresses(response):
                scanned += 1
                assert not PERSONNUMMER.search(url), f"{door.id} as {role} ({state}) writes {url}"
        assert scanned > 500, scanned  # the pages were read, not skipped
        # The detector finds a personnummer where one is shown: the officer's own JSON of the case.
        own = world.answer(DOORS_BY_ID["GET ++api++/case"], "owner", "draft")
        assert PERSONNUMMER.search(own.text)

    @pytest.mark.parametrize(("door", "check"), HEADER_CHECKS)
    def test_security_headers(self, world, door, check):
        answers = [world.answer(door, role, state) for state in door.states() for role in ROLES]
        if not door.signer_page:
            # A refusal there is Plone's own answer (login redirect, 401 JSON), with nothing personal in it.
            answers = [a for a in answers if 200 <= a.status_code < 300]
        assert answers, "no answer to check"
        for response in answers:
            headers = response.headers
            where = f"{response.request.method} {response.request.url} ({response.status_code})"
            if check == "framing":
                framing = headers.get("X-Frame-Options", "").upper() in ("DENY", "SAMEORIGIN")
                assert framing or "frame-ancestors" in headers.get("Content-Security-Policy", ""), where
            elif check == "nosniff":
                assert headers.get("X-Content-Type-Options", "").lower() == "nosniff", where
            elif check == "referrer":
                assert headers.get("Referrer-Policy") in REFERRER_POLICIES, where
            elif check == "no-store":
                assert "no-store" in headers.get("Cache-Control", ""), where
            elif check == "csp" and headers.get("Content-Type", "").startswith("text/html"):
                _assert_scripts_allowed_only_by_policy(response, where)
