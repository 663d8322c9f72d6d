"""The audit trail: every step of a case is logged, chained by hashes, and shown to the officer."""

import json

import pytest
import requests
import transaction
from AccessControl.Permission import Permission
from plone import api
from plone.app.testing import login, logout
from test_journey import (  # noqa: F401 -- the journey's servers and site, as fixtures
    bankid_server,
    browser_for,
    idp,
    link_in_download,
    mail_to,
    refresh,
    sent_case,
    site,
    tester,
)
from zExceptions import Unauthorized

from esign.plone import api as esign
from esign.plone import audit
from helpers.journey import link_in
from helpers.site import ANNA, BERTIL, identity_of
from helpers.smtp import text_of

OFFICER = ("officer", "officer-secret-1")


@pytest.fixture()
def officer_case(portal, officer, make_case):
    login(portal, "officer")
    return make_case()


def events(case) -> list[str]:
    return [e.event for e in audit.entries(case)]


def record_for(case, row):
    return next(r for r in case.signer_records if r.personal_number == row["personal_number"])


def stored(case):
    return audit._storage(case)


def test_a_new_case_starts_its_trail_with_created_by_the_officer(officer_case):
    (created,) = audit.entries(officer_case)
    assert (created.seq, created.event, created.actor) == (1, "created", "user:officer")
    assert created.prev_hash == audit.GENESIS
    assert audit.verify(officer_case).ok


def test_send_sign_and_complete_are_logged_in_order_with_the_certificate(officer_case):
    esign.send_case(officer_case)
    assert events(officer_case) == ["created", "sent", "mail_queued", "mail_queued"]
    invitations = audit.entries(officer_case)[2:]
    assert [(e.data["recipient"], e.data["kind"]) for e in invitations] == [
        ("signer:1", "invitation"),
        ("signer:2", "invitation"),
    ]
    assert all(e.data["message_id"].startswith("<") for e in invitations)

    first = esign.sign_case(
        officer_case,
        signer_id=record_for(officer_case, ANNA).signer_id,
        identity=identity_of(ANNA),
        evidence={"method": "bankid", "order_ref": "order-0001"},
    )
    esign.sign_case(
        officer_case, signer_id=record_for(officer_case, BERTIL).signer_id, identity=identity_of(BERTIL)
    )
    trail = audit.entries(officer_case)
    signed = [e for e in trail if e.event == "signed"]
    assert [e.actor for e in signed] == ["signer:1", "signer:2"]
    assert signed[0].data["certificate_serial"] == first.certificate_serial
    assert signed[0].data["order_ref"] == "order-0001"
    assert signed[0].data["level_of_assurance"].endswith("loa3")
    assert [e.event for e in trail[-4:]] == ["completed", "mail_queued", "mail_queued", "mail_queued"]
    assert [e.seq for e in trail] == list(range(1, len(trail) + 1))
    check = audit.verify(officer_case)
    assert check.ok and check.count == len(trail) and check.head == trail[-1].hash


def test_decline_keeps_the_reason_but_never_a_personnummer(officer_case):
    esign.send_case(officer_case)
    esign.decline_case(
        officer_case,
        signer_id=record_for(officer_case, BERTIL).signer_id,
        reason="Fel belopp; mitt personnummer är 19491117-2296",
    )
    declined = next(e for e in audit.entries(officer_case) if e.event == "declined")
    assert declined.actor == "signer:2"
    assert declined.data["reason"] == "Fel belopp; mitt personnummer är [personnummer]"
    assert events(officer_case)[-1] == "mail_queued"  # the officer is told
    assert audit.verify(officer_case).ok


def test_withdrawing_is_logged_and_the_trail_survives_it(officer_case):
    esign.send_case(officer_case)
    esign.withdraw_case(officer_case)
    assert events(officer_case)[-1] == "withdrawn"
    assert audit.entries(officer_case)[-1].actor == "user:officer"
    assert audit.verify(officer_case).ok


def test_identity_numbers_are_refused_and_unknown_events_too(officer_case):
    with pytest.raises(ValueError):
        audit.record(officer_case, "login", actor="signer:1", personal_number=ANNA["personal_number"])
    with pytest.raises(ValueError):
        audit.record(officer_case, "hacked", actor="system")
    assert events(officer_case) == ["created"]


def _edit(case):
    stored(case)[1]["data"]["signers"] = 3


def _edit_and_rehash(case):
    entry = stored(case)[-1]
    entry["data"]["kind"] = "copy"
    fields = {k: entry[k] for k in ("seq", "time", "event", "actor", "data", "prev_hash")}
    entry["hash"] = audit.entry_hash(**fields)


def _delete(case):
    del stored(case)[1]


def _swap(case):
    log = stored(case)
    log[1], log[2] = log[2], log[1]


def _cut_tail(case):
    del stored(case)[-1]


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        (_edit, "post 2 har ändrats"),
        (_edit_and_rehash, "stämmer inte med ärendets kontrollsumma"),
        (_delete, "post 2 har löpnummer 3"),
        (_swap, "post 2 har löpnummer 3"),
        (_cut_tail, "ska ha 4"),
    ],
    ids=["edited", "edited-and-rehashed", "removed", "swapped", "tail-cut"],
)
def test_verify_detects_every_kind_of_tampering(officer_case, tamper, words):
    esign.send_case(officer_case)
    assert audit.verify(officer_case).ok
    tamper(officer_case)
    check = audit.verify(officer_case)
    assert not check.ok
    assert any(words in problem for problem in check.problems), check.problems


def test_the_officer_sees_the_trail_and_its_verdict(officer_case):
    esign.send_case(officer_case)
    html = officer_case.restrictedTraverse("@@esign-audit")()
    assert "Kedjan är obruten" in html
    assert "Skickat för underskrift" in html and "undertecknare 2" in html
    assert audit.verify(officer_case).head in html
    assert "@@esign-audit" in officer_case.restrictedTraverse("@@view")()

    _delete(officer_case)
    assert "Kedjan är bruten: post 2" in officer_case.restrictedTraverse("@@esign-audit")()


def test_other_officers_and_anonymous_have_no_access_to_the_trail(portal, officer_case):
    api.user.create(email="other@example.se", username="other", password="other-secret-1")
    api.user.grant_roles(username="other", roles=["SigningOfficer", "Member"])
    esign.send_case(officer_case)
    for who in ("other", None):
        login(portal, who) if who else logout()
        with pytest.raises(Unauthorized):
            officer_case.restrictedTraverse("@@esign-audit")
    # Signers hold the Signer local role on the case, and that role may not open the trail.
    roles = set(Permission("esign.plone: Manage signing case", (), officer_case).getRoles())
    assert "Signer" not in roles and "Owner" in roles


def test_the_whole_journey_leaves_a_complete_unbroken_trail(site, sent_case, tester):  # noqa: F811
    case = sent_case(signers=(ANNA,))
    uid = case.UID()
    anna = browser_for(site)
    anna.get(link_in(text_of(mail_to(ANNA["email"], case))))
    assert anna.login_with_bankid(tester, personal_number=ANNA["personal_number"])["status"] == "complete"
    assert anna.get(f"@@esign-signer-document?case={uid}").content.startswith(b"%PDF")
    signed = anna.sign_with_bankid(tester, uid, personal_number=ANNA["personal_number"])
    assert signed["status"] == "complete", signed
    completed = mail_to(ANNA["email"], case, words="Ladda ned")
    assert anna.get(link_in_download(text_of(completed))).content.startswith(b"%PDF")

    case = refresh(case)
    trail = audit.entries(case)
    wanted = [
        "created",
        "sent",
        "mail_queued",
        "link_opened",
        "login",
        "document_viewed",
        "sign_started",
        "signed",
        "completed",
        "downloaded",
    ]
    seen = [e.event for e in trail]
    first_of_each = [e for i, e in enumerate(seen) if e in wanted and e not in seen[:i]]
    assert first_of_each == wanted, seen
    login_entry = next(e for e in trail if e.event == "login")
    assert login_entry.actor == "signer:1" and login_entry.data["method"] == "bankid"
    assert login_entry.data["level_of_assurance"] and login_entry.data["transaction_ref"]
    signed_entry = next(e for e in trail if e.event == "signed")
    assert signed_entry.data["order_ref"] == signed["order"]["orderRef"]
    assert signed_entry.data["certificate_serial"] == case.signer_records[0].certificate_serial
    assert audit.verify(case).ok

    as_json = json.dumps([e.data for e in trail] + [e.actor for e in trail], ensure_ascii=False)
    for number in (ANNA["personal_number"], ANNA["personal_number"][2:], "121212-1212"):
        assert number not in as_json

    page = requests.get(f"{case.absolute_url()}/@@esign-audit", auth=OFFICER, timeout=30)
    assert page.status_code == 200 and "Kedjan är obruten" in page.text and "Undertecknat" in page.text
    as_signer = anna.get(f"{case.absolute_url()}/@@esign-audit", allow_redirects=False)
    assert as_signer.status_code != 200 and "Kedjan" not in as_signer.text
    transaction.abort()
