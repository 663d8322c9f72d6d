""" "Mina ärenden" over real HTTP, and the catalog that finds a signer's cases without their number."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import requests
import transaction
from plone import api
from plone.app.testing import SITE_OWNER_NAME, SITE_OWNER_PASSWORD, login
from plone.namedfile.file import NamedBlobFile
from Products.CMFCore.indexing import processQueue

from esign.plone import api as esign
from esign.plone.content.identifiers import identity_key
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


def test_a_past_deadline_is_highlighted_while_the_case_still_awaits_signatures(site, new_case):
    late = new_case(title="Försenat avtal", send=True, deadline=dt.date.today() + dt.timedelta(days=3))
    late.deadline = dt.date.today() - dt.timedelta(days=2)  # the tick has not run yet
    transaction.commit()
    new_case(title="Avtal i tid", send=True, deadline=dt.date.today() + dt.timedelta(days=3))
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
