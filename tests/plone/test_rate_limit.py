"""BankID order starts are rationed per client, and a login always issues a new signer session.

Over real HTTP against the functional layer's WSGI server and the project's BankID
test server: a client that starts more orders than ``$ESIGN_BANKID_RATE`` allows is
refused (the Classic door with the error page, the REST door with 429) and BankID
sees no order; a forged ``X-Forwarded-For`` buys no new allowance. Session
fixation: a cookie value chosen (or obtained) before the login is never the
session after it. The window itself is checked in process, with explicit times,
and the claim that clients do not conflict with each other on a real
FileStorage.
"""

from __future__ import annotations

import re
import secrets
import threading

import pytest
import requests
import transaction
import ZODB
import ZPublisher.HTTPRequest
from BTrees.OOBTree import OOBTree
from persistent.mapping import PersistentMapping
from ZODB.FileStorage import FileStorage
from ZODB.POSException import ConflictError

from esign.plone import storage
from esign.plone.identity import ratelimit
from helpers.journey import SignerBrowser, hidden
from helpers.rest import Officer, RestSigner, assert_error, sent_case_uid
from helpers.site import ANNA, BERTIL

# The fixtures bankid_server, tester and site.
pytest_plugins = ["helpers.rest"]

SESSION_COOKIE = "__esign_signer"
REFUSAL = "För många inloggningsförsök. Försök igen om en stund."


@pytest.fixture()
def rate(monkeypatch):
    """Set ``$ESIGN_BANKID_RATE`` for this test (the server thread reads the same environment)."""

    def set_rate(text: str) -> None:
        monkeypatch.setenv(ratelimit.ENVIRONMENT, text)

    return set_rate


@pytest.fixture()
def no_orders_left(tester):
    yield
    for order in tester.pending():
        tester.cancel(order)


def start_login(browser: SignerBrowser, **headers) -> requests.Response:
    """Press "BankID på annan enhet" on the login chooser: one BankID order start."""
    page = browser.get("@@esign-login?val=medborgare", headers=headers)
    return browser.post(
        "@@esign-bankid-start",
        {"_esign_csrf": hidden(page.text, "_esign_csrf"), "purpose": "login", "mode": "qr"},
        headers=headers,
        allow_redirects=False,
    )


def started(response: requests.Response) -> bool:
    return response.status_code == 302 and response.headers["Location"].endswith("/@@esign-bankid")


def signer_cookie(browser: SignerBrowser | RestSigner) -> str | None:
    values = [c.value for c in browser.http.cookies if c.name == SESSION_COOKIE]
    assert len(values) <= 1, f"the browser holds {len(values)} signer cookies"
    return values[0] if values else None


def plant(http: requests.Session, value: str) -> None:
    """Put a signer cookie in a browser as an attacker would (same name, host and path as the site's)."""
    csrf = next(c for c in http.cookies if c.name == "__esign_csrf")
    http.cookies.set(SESSION_COOKIE, value, domain=csrf.domain, path=csrf.path)


def logged_in(portal_url: str, token: str) -> bool:
    """Whether a browser holding only ``token`` as its signer cookie is logged in."""
    answer = requests.get(
        f"{portal_url}/@@esign-pending", cookies={SESSION_COOKIE: token}, allow_redirects=False, timeout=30
    )
    assert answer.status_code in (200, 401), answer.status_code
    return answer.status_code == 200 and "Hantera väntande underskrifter" in answer.text


# -- the rate limit over HTTP ----------------------------------------------------------------------


def test_a_client_that_starts_too_many_bankid_logins_gets_the_error_page_and_bankid_sees_no_order(
    site, tester, rate, no_orders_left
):
    rate("3/300")
    browser = SignerBrowser(site.absolute_url())
    assert all(started(start_login(browser)) for _ in range(3))
    orders_before = len(tester.pending())

    refused = start_login(browser)

    assert refused.status_code == 429, (refused.status_code, refused.text[-500:])
    assert REFUSAL in refused.text and "E-underskrift" in refused.text  # the signer error page
    assert 1 <= int(refused.headers["Retry-After"]) <= 300
    assert len(tester.pending()) == orders_before


def test_the_rest_door_answers_429_and_shares_the_allowance_with_the_classic_pages(
    site, tester, rate, no_orders_left
):
    rate("3/300")
    browser = SignerBrowser(site.absolute_url())
    assert started(start_login(browser)) and started(start_login(browser))
    client = RestSigner(site.absolute_url())
    client.get("@esign-pending")  # hands out the CSRF token
    assert client.post("@esign-login", {"mode": "qr"}).status_code == 200
    orders_before = len(tester.pending())

    refused = client.post("@esign-login", {"mode": "same_device"})

    error = assert_error(refused, 429, "TooManyRequests")
    assert error["message"] == REFUSAL
    assert int(refused.headers["Retry-After"]) >= 1
    assert len(tester.pending()) == orders_before


def test_skriv_under_counts_too_and_a_refused_signer_has_signed_nothing(
    site, tester, pdf_bytes, rate, no_orders_left
):
    rate("2/300")
    uid = sent_case_uid(Officer(site.absolute_url()), pdf_bytes, (ANNA,), "Avtal om hemtjänst")
    anna = RestSigner(site.absolute_url())
    anna.login(tester, ANNA)  # start number one
    assert anna.post("@esign-sign", {"case": uid, "mode": "qr"}).status_code == 200  # number two
    tester.cancel(tester.wait_for_order(kind="sign"))
    assert anna.collect("@esign-sign")[-1].json()["status"] == "failed"

    again = anna.post("@esign-sign", {"case": uid, "mode": "qr"})

    assert_error(again, 429, "TooManyRequests")
    assert [o for o in tester.pending() if o["type"] == "sign"] == []
    (item,) = anna.get("@esign-pending").json()["items"]
    assert item["uid"] == uid  # still waiting for her signature


def test_a_forged_x_forwarded_for_buys_no_new_allowance(site, tester, rate, no_orders_left):
    rate("2/300")
    browser = SignerBrowser(site.absolute_url())
    assert started(start_login(browser, **{"X-Forwarded-For": "198.51.100.1"}))
    assert started(start_login(browser, **{"X-Forwarded-For": "198.51.100.2"}))

    refused = start_login(browser, **{"X-Forwarded-For": "198.51.100.3"})

    assert refused.status_code == 429 and REFUSAL in refused.text


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance(
    site, tester, rate, no_orders_left, monkeypatch
):
    # zope.conf's trusted-proxy: only then is X-Forwarded-For the client's address.
    monkeypatch.setattr(ZPublisher.HTTPRequest, "trusted_proxies", ["127.0.0.1", "::1"])
    rate("2/300")
    first, second = SignerBrowser(site.absolute_url()), SignerBrowser(site.absolute_url())
    for _ in range(2):
        assert started(start_login(first, **{"X-Forwarded-For": "198.51.100.7"}))

    assert start_login(first, **{"X-Forwarded-For": "198.51.100.7"}).status_code == 429
    assert started(start_login(second, **{"X-Forwarded-For": "203.0.113.9"}))
    # An IPv6 client is counted by its /64: another address of the same network shares it.
    assert started(start_login(second, **{"X-Forwarded-For": "2001:db8:1:2::10"}))
    assert started(start_login(second, **{"X-Forwarded-For": "2001:db8:1:2::beef"}))
    assert start_login(second, **{"X-Forwarded-For": "2001:db8:1:2:aaaa::1"}).status_code == 429
    assert started(start_login(second, **{"X-Forwarded-For": "2001:db8:1:3::10"}))


def test_logins_and_signatures_go_on_when_the_limit_is_switched_off(site, tester, rate, no_orders_left):
    rate("off")
    browser = SignerBrowser(site.absolute_url())
    assert all(started(start_login(browser)) for _ in range(12))  # more than the default's 10


# -- session fixation ------------------------------------------------------------------------------


def test_a_signer_cookie_planted_before_the_login_is_never_the_session_after_it(site, tester, rate):
    rate("off")
    portal_url = site.absolute_url()
    anna = SignerBrowser(portal_url)
    anna.get("@@esign-login?val=medborgare")
    planted = secrets.token_urlsafe(32)  # the attacker knows this value
    plant(anna.http, planted)
    assert signer_cookie(anna) == planted
    assert not logged_in(portal_url, planted)

    assert anna.login_with_bankid(tester, personal_number=ANNA["personal_number"])["status"] == "complete"

    issued = signer_cookie(anna)
    assert issued and issued != planted
    assert logged_in(portal_url, issued)
    assert not logged_in(portal_url, planted)  # the attacker's copy opens nothing


def test_a_session_the_attacker_holds_is_replaced_when_the_victim_logs_in_with_it(site, tester, rate):
    rate("off")
    portal_url = site.absolute_url()
    attacker = SignerBrowser(portal_url)
    attacker.login_with_bankid(tester, personal_number=BERTIL["personal_number"])
    attackers_token = signer_cookie(attacker)
    assert logged_in(portal_url, attackers_token)
    victim = SignerBrowser(portal_url)
    victim.get("@@esign-login?val=medborgare")
    plant(victim.http, attackers_token)

    victim.login_with_bankid(tester, personal_number=ANNA["personal_number"])

    victims_token = signer_cookie(victim)
    assert victims_token != attackers_token
    assert logged_in(portal_url, victims_token)
    assert not logged_in(portal_url, attackers_token)  # ended, not handed over to Anna
    pending = victim.get("@@esign-pending")
    assert "Anna Andersson" in pending.text and "Bertil" not in pending.text


def test_each_login_issues_a_new_session_id_and_ends_the_old_one(site, tester, rate):
    rate("off")
    portal_url = site.absolute_url()
    anna = SignerBrowser(portal_url)
    anna.login_with_bankid(tester, personal_number=ANNA["personal_number"])
    first = signer_cookie(anna)

    anna.login_with_bankid(tester, personal_number=ANNA["personal_number"])

    second = signer_cookie(anna)
    assert first and second and first != second
    assert logged_in(portal_url, second) and not logged_in(portal_url, first)


def test_a_rest_login_issues_its_own_session_whatever_cookie_the_client_sent(site, tester, rate):
    rate("off")
    portal_url = site.absolute_url()
    client = RestSigner(portal_url)
    client.get("@esign-pending")
    planted = secrets.token_urlsafe(32)
    plant(client.http, planted)

    done = client.login(tester, ANNA)

    set_cookie = done.headers.get("Set-Cookie", "")
    issued = re.search(rf"{SESSION_COOKIE}=([^;]+)", set_cookie)
    assert issued, set_cookie
    assert issued.group(1).strip('"') != planted and signer_cookie(client) == issued.group(1).strip('"')
    assert client.get("@esign-pending").status_code == 200
    assert not logged_in(portal_url, planted)


# -- the window, in process ------------------------------------------------------------------------


def test_the_window_slides_a_fifth_at_a_time_and_refusals_are_not_counted(portal, rate):
    rate("3/300")  # slots of 60 s; a start counts for 240-300 s
    t0 = 1_800_000_000.0  # the start of a slot
    for offset in (0, 10, 70):
        ratelimit.check_bankid_start("192.0.2.1", now=t0 + offset)
    with pytest.raises(ratelimit.TooManyAttempts) as refused:
        ratelimit.check_bankid_start("192.0.2.1", now=t0 + 100)
    assert refused.value.http_status == 429 and refused.value.message == REFUSAL
    assert refused.value.retry_after == 200  # the first two starts leave the window at t0 + 300
    with pytest.raises(ratelimit.TooManyAttempts):
        ratelimit.check_bankid_start("192.0.2.1", now=t0 + 299)
    assert ratelimit.starts_in_window("192.0.2.1", now=t0 + 299) == 3  # refusals did not count

    ratelimit.check_bankid_start("192.0.2.1", now=t0 + 300)  # slot t0 (two starts) has left the window
    ratelimit.check_bankid_start("192.0.2.1", now=t0 + 301)  # with the one at t0 + 70: three
    with pytest.raises(ratelimit.TooManyAttempts):
        ratelimit.check_bankid_start("192.0.2.1", now=t0 + 302)
    ratelimit.check_bankid_start("192.0.2.2", now=t0 + 302)  # another client: its own allowance


def test_the_store_keeps_one_window_of_clients_and_no_addresses(portal, rate):
    rate("10/300")
    t0 = 1_800_000_000.0
    for minute in range(30):
        ratelimit.check_bankid_start(f"192.0.2.{minute}", now=t0 + 60 * minute)
    slots = storage.store(ratelimit.STORE)["bankid"]
    assert len(slots) == 5  # older minutes were dropped by the ones that opened later
    keys = [key for counts in slots.values() for key in counts]
    assert len(keys) == 5 and not any("192.0.2" in key for key in keys)
    assert ratelimit.purge(now=t0 + 3600) == 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ratelimit.Rate(10, 300)),
        ("10/300", ratelimit.Rate(10, 300)),
        (" 20/600 ", ratelimit.Rate(20, 600)),
        ("0", None),
        ("off", None),
        ("ten per minute", ratelimit.Rate(10, 300)),  # unreadable: the default, never no limit
        ("0/300", ratelimit.Rate(10, 300)),
    ],
)
def test_the_rate_is_read_from_the_environment(text, expected):
    assert ratelimit.configured_rate({ratelimit.ENVIRONMENT: text}) == expected


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("", "unknown"),
    ],
)
def test_clients_are_counted_by_address_and_ipv6_by_network(address, key):
    assert ratelimit.client_key(address) == key


# -- write conflicts on a real storage -------------------------------------------------------------


@pytest.fixture()
def two_instances(tmp_path, monkeypatch):
    """Two connections to one FileStorage, as two Zope instances on one database see it."""
    db = ZODB.DB(FileStorage(str(tmp_path / "Data.fs")))
    with db.transaction() as conn:
        conn.root()["stores"] = PersistentMapping()
    local = threading.local()
    monkeypatch.setattr(
        ratelimit, "_root", lambda: local.conn.root()["stores"].setdefault(ratelimit.STORE, OOBTree())
    )
    monkeypatch.setenv(ratelimit.ENVIRONMENT, "10/300")
    yield db, local
    db.close()


def _race(db, local, addresses, now: float) -> list[str]:
    """Two transactions start from the same state, count one start each, then commit one after the other."""
    managers = [transaction.TransactionManager() for _ in addresses]
    conns = [db.open(transaction_manager=tm) for tm in managers]
    outcome = []
    for conn, address in zip(conns, addresses, strict=True):
        local.conn = conn
        ratelimit.check_bankid_start(address, now=now)
    for tm in managers:
        try:
            tm.commit()
            outcome.append("committed")
        except ConflictError:
            tm.abort()
            outcome.append("conflict")
    for conn in conns:
        conn.close()
    return outcome


def test_two_clients_starting_at_the_same_moment_on_two_instances_do_not_conflict(two_instances):
    db, local = two_instances
    t0 = 1_800_000_000.0
    assert _race(db, local, ["192.0.2.1"], t0) == ["committed"]  # this minute's slot exists now

    assert _race(db, local, ["192.0.2.3", "192.0.2.4"], t0 + 1) == ["committed", "committed"]
    assert _race(db, local, ["192.0.2.5", "192.0.2.6"], t0 + 2) == ["committed", "committed"]
    local.conn = db.open()
    assert [ratelimit.starts_in_window(f"192.0.2.{n}", now=t0 + 3) for n in range(1, 7)] == [1, 0, 1, 1, 1, 1]
    local.conn.close()


def test_only_the_first_start_of_a_new_minute_may_conflict_and_zope_retries_it(two_instances):
    db, local = two_instances
    t0 = 1_800_000_000.0
    _race(db, local, ["192.0.2.1"], t0)

    assert _race(db, local, ["192.0.2.3", "192.0.2.4"], t0 + 60) == ["committed", "conflict"]
    assert _race(db, local, ["192.0.2.4"], t0 + 61) == ["committed"]  # the retry


def test_one_client_racing_itself_on_two_instances_gets_a_conflict_not_an_extra_start(two_instances):
    db, local = two_instances
    t0 = 1_800_000_000.0
    _race(db, local, ["192.0.2.1"], t0)

    assert _race(db, local, ["192.0.2.9", "192.0.2.9"], t0 + 1) == ["committed", "conflict"]
