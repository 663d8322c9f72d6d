""" "Mina ärenden" over real HTTP, and the catalog that finds a signer's cases without their number."""

from __future__ import annotations

import datetime as dt
import html as htmllib
import re

import pytest
import requests
import transaction
from plone import api
from plone.app.testing import SITE_OWNER_NAME, SITE_OWNER_PASSWORD, login
from plone.namedfile.file import NamedBlobFile
from Products.CMFCore.indexing import processQueue
from Products.ZCatalog.CatalogBrains import AbstractCatalogBrain
from zope.component import getMultiAdapter
from zope.interface import alsoProvides

from esign.plone import api as esign
from esign.plone.content.identifiers import identity_key
from esign.plone.interfaces import IESignLayer
from esign.plone.officer.catalog import COLUMNS
from esign.plone.officer.views import PAGE_SIZE, case_row
from esign.plone.workflow import lifecycle
from esign.plone.workflow.cases import hash_salt, identity_keys_of
from helpers.site import ANNA, BERTIL, STAFF, identity_of

OFFICER = ("officer", "officer-secret-1")
OTHER_OFFICER = ("officer2", "officer-secret-2")
MANAGER = (SITE_OWNER_NAME, SITE_OWNER_PASSWORD)
PEOPLE = (ANNA, BERTIL, STAFF)


@pytest.fixture()
def site(functional_portal):
    for username, password in (OFFICER, OTHER_OFFICER):
        user = api.user.create(email=f"{username}@regionen.se", username=username, password=password)
        api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    transaction.commit()
    return functional_portal


@pytest.fixture()
def new_case(site, pdf_bytes):
    """A case created (and, with ``send=True``, sent) by an officer; committed."""

    def factory(*, by=OFFICER, title="Avtal om vårdtjänster", signers=(ANNA, BERTIL), send=False, **fields):
        with api.env.adopt_user(username=by[0]):
            case = api.content.create(
                container=site,
                type="SigningCase",
                title=title,
                information_class="K2",
                document=NamedBlobFile(pdf_bytes, filename="avtal.pdf", contentType="application/pdf"),
                signers=[dict(s) for s in signers],
                **fields,
            )
            if send:
                esign.send_case(case)
        transaction.commit()
        return case

    return factory


def my_cases(site, auth, **params) -> requests.Response:
    return requests.get(
        f"{site.absolute_url()}/@@esign-my-cases", params=params, auth=auth, timeout=30, allow_redirects=False
    )


def sign(case, row) -> None:
    key = row.get("personal_number") or row.get("hsa_id")
    record = next(r for r in case.signer_records if key in (r.personal_number, r.hsa_id))
    esign.sign_case(case, signer_id=record.signer_id, identity=identity_of(row))
    transaction.commit()


def row_of(html: str, title: str) -> str:
    """The table row of the case called ``title``."""
    match = re.search(rf"<tr[^>]*esign-case-row[^>]*>(?:(?!</tr>).)*?{re.escape(title)}.*?</tr>", html, re.S)
    assert match, f"no row for {title!r}"
    return match.group(0)


def test_an_officer_sees_their_own_cases_with_progress_but_not_another_officers(site, new_case):
    mine = new_case(title="Hyresavtal Storgatan 1", send=True)
    sign(mine, ANNA)
    draft = new_case(title="Utkast till avtal", signers=(ANNA, BERTIL, STAFF))
    new_case(by=OTHER_OFFICER, title="Någon annans ärende", send=True)

    response = my_cases(site, OFFICER)
    assert response.status_code == 200
    html = response.text
    assert "Mina ärenden" in html
    row = row_of(html, "Hyresavtal Storgatan 1")
    assert "1 av 2 undertecknat" in row
    assert "Bertil Berg" in row and "Anna Andersson" not in row  # who is still to sign
    assert f'href="{mine.absolute_url()}"' in row
    assert "0 av 3 undertecknat" in row_of(html, draft.title)
    assert "Någon annans ärende" not in html
    groups = re.findall(r'<section class="esign-state-group" data-state="([a-z_]+)"', html)
    assert groups == ["draft", "awaiting_signature"]
    assert "Väntar på underskrift" in html and "Utkast" in html


def test_the_state_filter_shows_one_state_only(site, new_case):
    new_case(title="Skickat avtal", send=True)
    new_case(title="Ej skickat avtal")
    html = my_cases(site, OFFICER, state="draft").text
    assert "Ej skickat avtal" in html
    assert "Skickat avtal" not in html.replace("Ej skickat avtal", "")


def test_the_search_finds_a_case_by_title_or_diarienummer(site, new_case):
    new_case(title="Hyresavtal Storgatan 1", case_number="RS 2025-0042")
    new_case(title="Avtal om städtjänster", case_number="RS 2025-0107")

    by_title = my_cases(site, OFFICER, q="hyresavtal").text
    assert "Hyresavtal Storgatan 1" in by_title and "Avtal om städtjänster" not in by_title
    by_number = my_cases(site, OFFICER, q="2025-0107").text
    assert "Avtal om städtjänster" in by_number and "Hyresavtal Storgatan 1" not in by_number
    assert "RS 2025-0107" in by_number
    assert "Inga ärenden hittades" in my_cases(site, OFFICER, q="finns inte").text


def test_a_past_deadline_is_highlighted_while_the_case_still_awaits_signatures(site, new_case, monkeypatch):
    late = new_case(title="Försenat avtal", send=True, deadline=dt.date.today() + dt.timedelta(days=3))
    new_case(title="Avtal i tid", send=True, deadline=dt.date.today() + dt.timedelta(days=30))
    # Five days later, and the tick has not run yet: the case still awaits signatures.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=5)
    monkeypatch.setattr("esign.plone.workflow.lifecycle.current_time", lambda: later)
    html = my_cases(site, OFFICER).text
    assert "esign-overdue" in row_of(html, "Försenat avtal")
    assert late.deadline.isoformat() in row_of(html, "Försenat avtal")
    assert "esign-overdue" not in row_of(html, "Avtal i tid")


def test_an_administrator_sees_everyones_cases_with_the_toggle(site, new_case):
    new_case(title="Handläggare ettans ärende")
    new_case(by=OTHER_OFFICER, title="Handläggare tvåans ärende")

    own = my_cases(site, MANAGER).text
    assert 'name="all"' in own
    assert "Handläggare ettans ärende" not in own
    everyone = my_cases(site, MANAGER, all="1").text
    assert "Handläggare ettans ärende" in everyone and "Handläggare tvåans ärende" in everyone


def test_an_officer_cannot_use_the_toggle_to_see_other_officers_cases(site, new_case):
    new_case(by=OTHER_OFFICER, title="Handläggare tvåans ärende")
    html = my_cases(site, OFFICER, all="1").text
    assert 'name="all"' not in html
    assert "Handläggare tvåans ärende" not in html


@pytest.mark.parametrize("auth", [None, ("nobody", "wrong-password")], ids=["anonymous", "bad-login"])
def test_the_page_is_closed_to_anyone_not_logged_in_as_an_officer(site, new_case, auth):
    new_case(title="Hemligt avtal")
    response = my_cases(site, auth)
    assert response.status_code in (302, 401, 403)
    if response.status_code == 302:
        assert "login" in response.headers["Location"]
    assert "Hemligt avtal" not in response.text


def test_a_member_who_is_not_an_officer_is_refused(site, new_case):
    api.user.create(email="member@regionen.se", username="member", password="member-secret-1")
    transaction.commit()
    response = my_cases(site, ("member", "member-secret-1"))
    assert response.status_code in (302, 401, 403)
    assert "Mina ärenden" not in response.text


def test_no_personnummer_or_hsa_id_appears_on_the_page_not_even_masked(site, new_case):
    case = new_case(title="Avtal med tre parter", signers=PEOPLE, send=True)
    sign(case, ANNA)
    new_case(title="Utkast med tre parter", signers=PEOPLE)
    for auth, params in ((OFFICER, {}), (MANAGER, {"all": "1"})):
        html = my_cases(site, auth, **params).text
        assert "Avtal med tre parter" in html and "Utkast med tre parter" in html
        # Whole numbers only: hex tokens (plone.protect's) may hold 12 digits in a row.
        assert not re.search(r"(?<!\w)(\d{12}|\d{6,8}[-+]\d{4}|\d{8}-\*{4})(?!\w)", html)
        assert STAFF["hsa_id"] not in html
        assert "Sara Sjuksköterska" in html  # names are what identify the signers


# -- the catalog ---------------------------------------------------------------------


def catalog_text(catalog) -> str:
    """Every value of every index and metadata column, for every object, as one text."""
    processQueue()  # indexing waits for the end of the transaction or the next search
    zcatalog = catalog._catalog
    parts = []
    for rid in zcatalog.paths:
        parts.append(repr(zcatalog.getMetadataForRID(rid)))
        for name in catalog.indexes():
            parts.append(repr(zcatalog.getIndex(name).getEntryForObject(rid, default=None)))
    return "\n".join(parts)


def test_the_catalog_holds_a_salted_hash_of_each_signer_never_the_number(portal, officer, make_case):
    login(portal, "officer")
    draft = make_case(signers=(ANNA, STAFF), title="Avtal som utkast")
    sent = make_case(signers=(BERTIL, STAFF), title="Skickat avtal")
    esign.send_case(sent)
    catalog = api.portal.get_tool("portal_catalog")

    text = catalog_text(catalog)
    for person in (ANNA, BERTIL):
        number = person["personal_number"]
        assert number not in text
        assert number[2:] not in text  # nor the ten-digit form
    assert STAFF["hsa_id"] not in text and STAFF["hsa_id"].lower() not in text
    assert "Avtal som utkast" in text  # the catalog was read, not empty

    salt = hash_salt()
    key_of = {
        p["name"]: identity_key(salt=salt, personal_number=p.get("personal_number"), hsa_id=p.get("hsa_id"))
        for p in PEOPLE
    }
    index = catalog._catalog.getIndex("esign_signer_keys")
    assert set(index.uniqueValues()) >= set(key_of.values())
    for case in (draft, sent):
        assert sorted(index.getEntryForObject(catalog.getrid("/".join(case.getPhysicalPath())))) == sorted(
            identity_keys_of(case)
        )


def test_a_signers_pending_cases_are_found_by_the_hash_and_not_by_the_plain_number(
    portal, officer, make_case
):
    login(portal, "officer")
    pending = make_case(signers=(ANNA, STAFF), title="Väntande avtal")
    esign.send_case(pending)
    make_case(signers=(ANNA,), title="Ej skickat")

    assert esign.cases_for_identity(personal_number=ANNA["personal_number"]) == [pending]
    assert esign.cases_for_identity(hsa_id=STAFF["hsa_id"].lower()) == [pending]
    assert esign.cases_for_identity(personal_number=BERTIL["personal_number"]) == []
    with api.env.adopt_roles(["Manager"]):
        for plain in (ANNA["personal_number"], STAFF["hsa_id"]):
            assert len(api.content.find(SearchableText=plain, unrestricted=True)) == 0
            assert len(api.content.find(esign_signer_keys=plain, unrestricted=True)) == 0


# -- many cases: pages, and rows from the catalog alone ----------------------------------


def titles_on(html: str) -> list[str]:
    return re.findall(r'<tr[^>]*esign-case-row[^>]*>\s*<td><a href="[^"]*">([^<]+)</a>', html)


def link(html: str, css_class: str) -> str:
    match = re.search(rf'<a class="{css_class}" href="([^"]+)"', html)
    assert match, f"no {css_class} link"
    return htmllib.unescape(match.group(1))


def test_more_cases_than_a_page_show_the_first_page_the_count_and_a_link_to_the_rest(site, pdf_bytes):
    with api.env.adopt_user(username=OFFICER[0]):
        for number in range(1, PAGE_SIZE + 4):
            api.content.create(
                container=site,
                type="SigningCase",
                title=f"Ramavtal nr {number:03d}",
                information_class="K2",
                document=NamedBlobFile(pdf_bytes, filename="avtal.pdf", contentType="application/pdf"),
                signers=[dict(ANNA)],
            )
    transaction.commit()
    everything = {f"Ramavtal nr {number:03d}" for number in range(1, PAGE_SIZE + 4)}

    first = my_cases(site, OFFICER, q="ramavtal").text
    assert f'Utkast (<span class="esign-group-count">{PAGE_SIZE + 3}</span>)' in first
    shown = titles_on(first)
    assert len(shown) == PAGE_SIZE
    more = link(first, "esign-show-more")
    assert "Visa fler" in first
    assert "q=ramavtal" in more and "state=draft" in more

    rest = requests.get(more, auth=OFFICER, timeout=30).text
    assert f"Visar {PAGE_SIZE + 1}–{PAGE_SIZE + 3} av {PAGE_SIZE + 3}" in rest
    assert set(titles_on(rest)) | set(shown) == everything
    assert not set(titles_on(rest)) & set(shown)
    back = requests.get(link(rest, "esign-previous-page"), auth=OFFICER, timeout=30).text
    assert titles_on(back) == shown
    assert "esign-next-page" in back and "Föregående sida" not in back
    # An old link past the end (cases have moved on since) shows the last page.
    beyond = my_cases(site, OFFICER, q="ramavtal", state="draft", b_start="1000").text
    assert sorted(titles_on(beyond)) == sorted(titles_on(rest))


@pytest.fixture()
def dashboard(portal, officer, make_case):
    """Render "Mina ärenden" in process, as the logged-in officer."""
    login(portal, "officer")

    def render(**form) -> str:
        request = portal.REQUEST
        alsoProvides(request, IESignLayer)
        request.form.clear()
        request.form.update(form)
        return getMultiAdapter((portal, request), name="esign-my-cases")()

    return render


def test_the_rows_come_from_the_catalog_without_loading_a_single_case(
    portal, dashboard, make_case, monkeypatch
):
    draft = make_case(title="Utkast om lokaler", case_number="RS 2025-0001")
    sent = make_case(title="Skickat hyresavtal", signers=(ANNA, BERTIL))
    esign.send_case(sent)
    sign_as(sent, ANNA)
    processQueue()
    transaction.savepoint(optimistic=True)
    for case in (draft, sent):
        case._p_deactivate()
        assert case._p_status == "ghost"

    def refuse(self, *args, **kwargs):
        raise AssertionError("the listing loaded a case")

    monkeypatch.setattr(AbstractCatalogBrain, "getObject", refuse)
    monkeypatch.setattr(AbstractCatalogBrain, "_unrestrictedGetObject", refuse)
    for form in ({}, {"q": "hyres"}, {"state": "awaiting_signature"}):
        html = dashboard(**form)
        assert "Skickat hyresavtal" in html
    assert "1 av 2 undertecknat" in row_of(html, "Skickat hyresavtal")
    assert "Bertil Berg" in row_of(html, "Skickat hyresavtal")
    assert "RS 2025-0001" in row_of(dashboard(), "Utkast om lokaler")
    assert [case._p_status for case in (draft, sent)] == ["ghost", "ghost"]


def sign_as(case, row) -> None:
    key = row.get("personal_number") or row.get("hsa_id")
    record = next(r for r in case.signer_records if key in (r.personal_number, r.hsa_id))
    esign.sign_case(case, signer_id=record.signer_id, identity=identity_of(row))


def listed(case):
    """The case's row as the dashboard builds it, from the catalog."""
    (brain,) = api.content.find(UID=case.UID())
    return case_row(brain, today=dt.date.today())


def test_the_listing_columns_follow_the_case_through_send_sign_decline_and_expiry(portal, officer, make_case):
    login(portal, "officer")
    deadline = dt.date.today() + dt.timedelta(days=10)
    case = make_case(title="Avtal om tolktjänster", case_number="RS 2025-0300", deadline=deadline)
    row = listed(case)
    assert (row.state, row.signed, row.total, row.waiting_for) == ("draft", 0, 2, ())
    assert (row.case_number, row.deadline) == ("RS 2025-0300", deadline)

    esign.send_case(case)
    row = listed(case)
    assert (row.state, row.signed, row.total) == ("awaiting_signature", 0, 2)
    assert row.waiting_for == (ANNA["name"], BERTIL["name"])

    sign_as(case, ANNA)
    row = listed(case)
    assert (row.state, row.signed, row.waiting_for) == ("awaiting_signature", 1, (BERTIL["name"],))

    record = next(r for r in case.signer_records if r.personal_number == BERTIL["personal_number"])
    esign.decline_case(case, signer_id=record.signer_id, reason="Fel belopp")
    row = listed(case)
    assert (row.state, row.signed, row.total, row.waiting_for) == ("declined", 1, 2, ())

    complete = make_case(title="Avtal som blir klart", signers=(ANNA,))
    esign.send_case(complete)
    sign_as(complete, ANNA)
    row = listed(complete)
    assert (row.state, row.signed, row.total, row.waiting_for) == ("signed", 1, 1, ())

    late = make_case(title="Avtal som går ut", deadline=deadline)
    esign.send_case(late)
    assert listed(late).waiting_for == (ANNA["name"], BERTIL["name"])
    after = dt.datetime.combine(deadline + dt.timedelta(days=1), dt.time(12), tzinfo=dt.UTC)
    with api.env.adopt_roles(["Manager"]):
        assert lifecycle.expire_due(now=after) == [late.UID()]
    row = listed(late)
    assert (row.state, row.signed, row.total, row.waiting_for) == ("expired", 0, 2, ())

    withdrawn = make_case(title="Avtal som dras tillbaka")
    esign.send_case(withdrawn)
    esign.withdraw_case(withdrawn)
    row = listed(withdrawn)
    assert (row.state, row.total, row.waiting_for) == ("draft", 2, ())


def test_the_upgrade_fills_the_listing_columns_of_existing_cases(portal, officer, make_case, setup_tool):
    login(portal, "officer")
    draft = make_case(title="Gammalt utkast", case_number="RS 2024-0009")
    sent = make_case(title="Gammalt skickat avtal")
    esign.send_case(sent)
    sign_as(sent, ANNA)
    processQueue()
    modified = sent.modified()
    catalog = api.portal.get_tool("portal_catalog")
    for column in COLUMNS:  # a site from before 1004
        catalog.delColumn(column)
    setup_tool.setLastVersionForProfile("esign.plone:default", "1003")

    with api.env.adopt_roles(["Manager"]):
        setup_tool.upgradeProfile("esign.plone:default")

    assert setup_tool.getLastVersionForProfile("esign.plone:default") == ("1005",)
    assert set(COLUMNS) <= set(catalog.schema())
    row = listed(sent)
    assert (row.signed, row.total, row.waiting_for) == (1, 2, (BERTIL["name"],))
    assert (listed(draft).case_number, listed(draft).total) == ("RS 2024-0009", 2)
    assert sent.modified() == modified  # the cases themselves were not touched
    assert esign.cases_for_identity(personal_number=BERTIL["personal_number"]) == [sent]
