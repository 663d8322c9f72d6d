"""A sent case over time: "Påminn", automatic reminders, expiry at the deadline, withdrawal, email correction.

Over real HTTP and SMTP like the journey tests; time moves through ``now=``, never by sleeping.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests
import transaction
from plone import api
from plone.app.testing import SITE_OWNER_NAME, SITE_OWNER_PASSWORD

from esign.plone import api as esign
from esign.plone import audit
from esign.plone.errors import InvalidInput, WrongState
from esign.plone.notify import mail
from esign.plone.workflow import lifecycle
from esign.plone.workflow.links import SWEDEN
from helpers.journey import hidden, link_in
from helpers.site import ANNA, BERTIL, MAIL, STAFF, send_new_case
from helpers.smtp import text_of

OFFICER = ("officer", "officer-secret-1")
OFFICER_EMAIL = "officer@regionen.se"


@pytest.fixture()
def site(functional_portal, monkeypatch):
    # Several mails per test: a short queue interval keeps the waits short.
    monkeypatch.setattr(mail, "QUEUE_INTERVAL", 0.2)
    mailhost = api.portal.get_tool("MailHost")
    mail.ensure_queue_processor(mailhost, restart=True)
    api.portal.set_registry_record("plone.default_language", "sv")
    user = api.user.create(email=OFFICER_EMAIL, username="officer", password=OFFICER[1])
    api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    transaction.commit()
    yield functional_portal
    mail.stop_queue_processor(mailhost)


@pytest.fixture()
def sent_case(site, pdf_bytes):
    def factory(signers=(ANNA, BERTIL), **fields):
        return send_new_case(site, pdf_bytes, officer="officer", signers=signers, **fields)

    return factory


def mail_to(address: str, case, *, subject: str = "", timeout: float = 10):
    return MAIL.wait_for(
        lambda m: address in m["To"] and case.title in text_of(m) and subject in m["Subject"], timeout=timeout
    )


def no_mail_to(address: str, case, *, subject: str = "") -> bool:
    return not any(
        address in m["To"] and case.title in text_of(m) and subject in m["Subject"] for m in MAIL.messages()
    )


def days_after_sending(case, days: float) -> dt.datetime:
    return lifecycle._sent_at(case) + dt.timedelta(days=days)


def opens(link: str) -> bool:
    response = requests.get(link, allow_redirects=False, timeout=30)
    assert response.status_code in (302, 404), response.status_code
    return response.status_code == 302 and "@@esign-login" in response.headers["Location"]


def done(result: dict) -> dict:
    """A tick's result without ``deliveries``: how many mail outcomes the queue reported is timing."""
    assert isinstance(result.pop("deliveries"), int)
    assert result.pop("renewed") == []  # no archive timestamp is due in these tests
    return result


def events(case, name: str) -> list:
    return [e for e in audit.entries(case) if e.event == name]


def test_the_officer_reminds_with_the_påminn_button_and_the_signer_gets_a_working_link(site, sent_case):
    case = sent_case(signers=(ANNA,))
    mail_to(ANNA["email"], case, subject="ny elektronisk underskrift")
    officer = requests.Session()
    officer.auth = OFFICER

    page = officer.get(case.absolute_url(), timeout=30)
    assert "Påminn" in page.text
    done = officer.post(
        f"{case.absolute_url()}/@@esign-remind",
        data={"_authenticator": hidden(page.text, "_authenticator")},
        timeout=30,
    )

    assert "Påminnelse skickad till 1 undertecknare" in done.text
    reminder = mail_to(ANNA["email"], case, subject="Påminnelse")
    assert "Hantera ärendet" in text_of(reminder)
    assert opens(link_in(text_of(reminder)))
    case._p_jar.sync()
    assert [e.data["signer"] for e in events(case, "reminded")] == ["signer:1"]
    assert events(case, "reminded")[0].actor == "user:officer"


def test_påminn_without_the_csrf_token_reminds_nobody(site, sent_case):
    case = sent_case(signers=(ANNA,))
    response = requests.post(f"{case.absolute_url()}/@@esign-remind", auth=OFFICER, timeout=30)
    assert response.status_code == 403
    case._p_jar.sync()
    assert events(case, "reminded") == []


def test_automatic_reminders_wait_for_the_interval_and_are_sent_once(site, sent_case):
    case = sent_case(signers=(ANNA, BERTIL))

    assert lifecycle.remind_due(now=days_after_sending(case, 2.9)) == 0
    assert lifecycle.remind_due(now=days_after_sending(case, 3)) == 2
    assert lifecycle.remind_due(now=days_after_sending(case, 3)) == 0
    assert lifecycle.remind_due(now=days_after_sending(case, 5.9)) == 0
    transaction.commit()

    for person in (ANNA, BERTIL):
        assert opens(link_in(text_of(mail_to(person["email"], case, subject="Påminnelse"))))
    assert lifecycle.remind_due(now=days_after_sending(case, 6)) == 2
    transaction.abort()


def test_no_automatic_reminders_when_the_interval_is_zero(site, sent_case):
    case = sent_case(signers=(ANNA,))
    api.portal.set_registry_record("esign.reminder_interval_days", 0)
    assert lifecycle.remind_due(now=days_after_sending(case, 30)) == 0
    transaction.abort()


def test_in_sequence_only_the_signer_whose_turn_it_is_gets_reminders(site, sent_case):
    case = sent_case(signers=(ANNA, BERTIL), signing_order="sequential")
    assert lifecycle.remind(case, actor="system") == 1
    assert [r.position for r in lifecycle.due_signers(case)] == [1]
    transaction.abort()


def test_at_the_deadline_the_case_expires_the_links_die_and_the_officer_is_told(site, sent_case):
    deadline = dt.date.today() + dt.timedelta(days=5)
    case = sent_case(signers=(ANNA, BERTIL), deadline=deadline)
    link = link_in(text_of(mail_to(ANNA["email"], case)))
    last_minute = dt.datetime.combine(deadline, dt.time(23, 59), tzinfo=SWEDEN)

    assert done(lifecycle.tick(now=last_minute)) == {"expired": [], "reminded": 2}
    after = last_minute + dt.timedelta(minutes=2)
    assert done(lifecycle.tick(now=after)) == {"expired": [case.UID()], "reminded": 0}
    assert done(lifecycle.tick(now=after)) == {"expired": [], "reminded": 0}
    transaction.commit()

    assert esign.state_of(case) == "expired"
    assert requests.get(link, timeout=30).status_code == 404
    notice = mail_to(OFFICER_EMAIL, case, subject="gått ut")
    assert "Anna Andersson" in text_of(notice) and "Bertil Berg" in text_of(notice)
    anna = case.signer_records[0]
    with pytest.raises(WrongState):
        esign.sign_case(case, signer_id=anna.signer_id, identity=None)
    assert [e.data["pending"] for e in events(case, "expired")] == [["signer:1", "signer:2"]]


def test_a_case_cannot_be_expired_before_its_deadline(site, sent_case):
    from plone.api.exc import InvalidParameterError

    case = sent_case(signers=(ANNA,), deadline=dt.date.today() + dt.timedelta(days=1))
    with api.env.adopt_roles(["Manager"]), pytest.raises(InvalidParameterError):
        api.content.transition(obj=case, transition="expire")
    assert lifecycle.expire_due() == []
    transaction.abort()


def test_withdrawal_tells_the_invited_signers_and_kills_their_links(site, sent_case):
    case = sent_case(signers=(ANNA, BERTIL), signing_order="sequential")
    link = link_in(text_of(mail_to(ANNA["email"], case)))

    with api.env.adopt_user(username="officer"):
        esign.withdraw_case(case)
    transaction.commit()

    notice = mail_to(ANNA["email"], case, subject="dragits tillbaka")
    assert "Hantera ärendet" not in text_of(notice)
    assert requests.get(link, timeout=30).status_code == 404
    assert no_mail_to(BERTIL["email"], case)  # never invited, so nothing to take back


def test_a_corrected_email_gets_a_fresh_link_and_the_signer_stays_the_same_person(site, sent_case):
    case = sent_case(signers=(ANNA, STAFF))
    mail_to(STAFF["email"], case)
    sara = case.signer_records[1]
    before = (sara.identity_key, sara.hsa_id, sara.principal_id)

    with api.env.adopt_user(username="officer"):
        lifecycle.correct_email(
            case, signer_id=sara.signer_id, email=" sara.s@regionen.se ", actor=audit.current_actor()
        )
    transaction.commit()

    invitation = mail_to("sara.s@regionen.se", case, subject="ny elektronisk underskrift")
    assert opens(link_in(text_of(invitation)))
    assert sara.email == "sara.s@regionen.se"
    assert (sara.identity_key, sara.hsa_id, sara.principal_id) == before
    assert case.signers[1]["email"] == "sara.s@regionen.se"
    corrected = events(case, "email_corrected")[0]
    assert (corrected.actor, corrected.data["new_email"]) == ("user:officer", "sara.s@regionen.se")


def test_the_correct_email_form_refuses_a_bad_address(site, sent_case):
    case = sent_case(signers=(ANNA,))
    officer = requests.Session()
    officer.auth = OFFICER
    form = officer.get(f"{case.absolute_url()}/@@esign-correct-email", timeout=30)
    assert "Anna Andersson" in form.text and "191212121212" not in form.text
    anna = case.signer_records[0]
    response = officer.post(
        f"{case.absolute_url()}/@@esign-correct-email",
        data={
            "_authenticator": hidden(form.text, "_authenticator"),
            "signer": anna.signer_id,
            "email": "inte-en-adress",
            "form.submitted": "1",
        },
        timeout=30,
    )
    assert response.status_code == 400
    assert "E-postadressen är inte giltig." in response.text
    with pytest.raises(InvalidInput):
        lifecycle.correct_email(case, signer_id=anna.signer_id, email=ANNA["email"], actor="system")


def test_the_tick_view_answers_schedulers_with_json_and_only_to_a_post_with_a_token(site, sent_case):
    case = sent_case(signers=(ANNA,), deadline=dt.date.today() + dt.timedelta(days=1))
    tick_url = f"{site.absolute_url()}/@@esign-tick"
    owner = requests.Session()
    owner.auth = (SITE_OWNER_NAME, SITE_OWNER_PASSWORD)

    assert owner.get(tick_url, timeout=30).status_code == 405
    assert owner.post(tick_url, timeout=30).status_code == 403
    assert requests.post(tick_url, auth=OFFICER, allow_redirects=False, timeout=30).status_code in (
        302,
        401,
        403,
    )
    token = hidden(
        owner.get(f"{case.absolute_url()}/@@esign-correct-email", timeout=30).text, "_authenticator"
    )
    response = owner.post(tick_url, headers={"X-CSRF-TOKEN": token}, timeout=30)

    assert response.status_code == 200
    assert done(json.loads(response.text)) == {"expired": [], "reminded": 0}


def test_the_console_script_ticks_each_site_and_commits(site, sent_case):
    case = sent_case(signers=(ANNA,), deadline=dt.date.today() - dt.timedelta(days=1))
    app = site.aq_parent

    results = lifecycle.tick_sites(app, url="https://e-underskrift.regionen.se")
    assert done(results[site.getId()]) == {"expired": [case.UID()], "reminded": 0}
    assert "https://e-underskrift.regionen.se/" in text_of(mail_to(OFFICER_EMAIL, case, subject="gått ut"))
    assert lifecycle.tick_sites(app, url="https://e-underskrift.regionen.se")[site.getId()]["expired"] == []
    assert "error" in lifecycle.tick_sites(app)[site.getId()]  # no address for the links: nothing sent


def test_the_upgrade_to_1002_adds_the_expired_state_and_keeps_existing_cases(site, sent_case):
    case = sent_case(signers=(ANNA,))
    workflow = api.portal.get_tool("portal_workflow")["esign_signing_case_workflow"]
    workflow.states.deleteStates(["expired"])
    workflow.transitions.deleteTransitions(["expire"])
    setup = api.portal.get_tool("portal_setup")
    setup.setLastVersionForProfile("esign.plone:default", "1001")

    setup.upgradeProfile("esign.plone:default")

    assert "expired" in workflow.states and "expire" in workflow.transitions
    assert "expire" in workflow.states["awaiting_signature"].transitions
    assert setup.getLastVersionForProfile("esign.plone:default") == ("1005",)
    assert esign.state_of(case) == "awaiting_signature"
    assert api.portal.get_registry_record("esign.reminder_interval_days") == 3
    transaction.abort()
