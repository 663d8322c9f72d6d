"""Case events as content-rule triggers: what an administrator can hang actions on in the control panel."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import transaction
from plone import api
from plone.app.contentrules.actions.mail import MailAction
from plone.app.contentrules.actions.move import MoveAction
from plone.app.contentrules.api import assign_rule
from plone.app.contentrules.rule import Rule
from plone.app.testing import login
from plone.contentrules.engine.interfaces import IRuleStorage
from plone.namedfile.file import NamedBlobFile
from zope.component import getGlobalSiteManager, getUtility
from zope.container.interfaces import INameChooser
from zope.schema.interfaces import IVocabularyFactory

from esign.plone import api as esign
from esign.plone.errors import InvalidInput
from esign.plone.events import (
    ICaseDeclined,
    ICaseEvent,
    ICaseExpired,
    ICaseSent,
    ICaseSigned,
    ICaseWithdrawn,
    ISignatureAdded,
)
from esign.plone.notify import mail
from esign.plone.workflow import lifecycle
from esign.plone.workflow.cases import is_locked_signed
from helpers.site import ANNA, BERTIL, MAIL, identity_of
from helpers.smtp import text_of

KINDS = {
    ICaseSent: "sent",
    ISignatureAdded: "signature",
    ICaseSigned: "signed",
    ICaseDeclined: "declined",
    ICaseExpired: "expired",
    ICaseWithdrawn: "withdrawn",
}


class Seen:
    """What each case event found when it fired."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, event) -> None:
        case = event.object
        kind = next(k for iface, k in KINDS.items() if iface.providedBy(event))
        self.events.append(
            {
                "kind": kind,
                "case": case,
                "state": esign.state_of(case),
                "locked": is_locked_signed(case),
                "has_records": case.signer_records is not None,
                "signer": getattr(getattr(event, "record", None), "name", None),
            }
        )

    def kinds(self) -> list[str]:
        return [e["kind"] for e in self.events]


@pytest.fixture()
def seen():
    collector = Seen()
    registry = getGlobalSiteManager()
    registry.registerHandler(collector, (ICaseEvent,))
    yield collector
    registry.unregisterHandler(collector, (ICaseEvent,))


@pytest.fixture()
def case(portal, officer, make_case):
    login(portal, "officer")
    return make_case(signers=(ANNA, BERTIL))


def sign(case, row):
    key = row.get("personal_number") or row.get("hsa_id")
    record = next(r for r in case.signer_records if key in (r.personal_number, r.hsa_id))
    esign.sign_case(case, signer_id=record.signer_id, identity=identity_of(row))
    return record


def test_sending_fires_case_sent_once_the_signers_are_frozen(case, seen):
    esign.send_case(case)
    assert seen.kinds() == ["sent"]
    assert seen.events[0]["state"] == "awaiting_signature"
    assert seen.events[0]["has_records"]


def test_each_signature_fires_signature_added_and_the_last_one_case_signed_on_a_locked_case(case, seen):
    esign.send_case(case)
    sign(case, ANNA)
    assert seen.kinds() == ["sent", "signature"]
    assert seen.events[1]["signer"] == ANNA["name"]
    assert seen.events[1]["state"] == "awaiting_signature"

    sign(case, BERTIL)
    assert seen.kinds() == ["sent", "signature", "signature", "signed"]
    assert seen.events[2]["signer"] == BERTIL["name"]
    signed = seen.events[3]
    assert signed["state"] == "signed"
    # A content rule sees the case as it stays: locked against every change.
    assert signed["locked"]


def test_a_signer_declining_fires_case_declined(case, seen):
    esign.send_case(case)
    record = case.signer_records[0]
    esign.decline_case(case, signer_id=record.signer_id, reason="Fel belopp")
    assert seen.kinds() == ["sent", "declined"]
    assert seen.events[-1]["state"] == "declined"


def test_withdrawing_fires_case_withdrawn_after_the_case_is_a_draft_again(case, seen):
    esign.send_case(case)
    esign.withdraw_case(case)
    assert seen.kinds() == ["sent", "withdrawn"]
    assert seen.events[-1]["state"] == "draft"
    assert not seen.events[-1]["has_records"]


def test_a_case_past_its_last_day_fires_case_expired(portal, officer, make_case, seen):
    login(portal, "officer")
    deadline = dt.date.today() + dt.timedelta(days=1)
    case = make_case(signers=(ANNA,), deadline=deadline)
    esign.send_case(case)
    after = dt.datetime.combine(deadline + dt.timedelta(days=2), dt.time(8), tzinfo=dt.UTC)
    assert lifecycle.expire_due(now=after) == [case.UID()]
    assert seen.kinds() == ["sent", "expired"]
    assert seen.events[-1]["state"] == "expired"


def test_a_case_that_fails_to_send_fires_nothing(portal, officer, make_case, seen):
    login(portal, "officer")
    case = make_case(signers=())
    with pytest.raises(InvalidInput):
        esign.send_case(case)
    assert seen.kinds() == []


def test_the_content_rules_control_panel_offers_every_case_event(portal):
    vocabulary = getUtility(IVocabularyFactory, "plone.contentrules.events")(portal)
    offered = {term.value: term.title for term in vocabulary}
    assert offered[ICaseSent] == "Signing case sent"
    assert offered[ISignatureAdded] == "Signature added to signing case"
    assert offered[ICaseSigned] == "Signing case signed"
    assert offered[ICaseDeclined] == "Signing case declined"
    assert offered[ICaseExpired] == "Signing case expired"
    assert offered[ICaseWithdrawn] == "Signing case withdrawn"
    # The form posts the token back: it must lead to the same event.
    for iface in KINDS:
        term = vocabulary.getTerm(iface)
        assert vocabulary.getTermByToken(term.token).value is iface


def add_rule(portal, *, event, actions, title: str) -> Rule:
    """As the content-rules control panel does: a rule in the storage, assigned to the site root."""
    storage = getUtility(IRuleStorage)
    rule = Rule()
    rule.title = title
    rule.event = event
    storage[INameChooser(storage).chooseName(None, rule)] = rule
    rule = storage[rule.__name__]
    for action in actions:
        rule.actions.append(action)
    assign_rule(portal, rule.__name__)
    return rule


def test_a_rule_moves_every_signed_case_into_the_archive_folder_still_signed_and_locked(
    portal, officer, make_case, as_manager
):
    archive = api.content.create(container=portal, type="Folder", id="arkiv", title="Arkiv")
    move = MoveAction()
    move.target_folder = "/arkiv"
    add_rule(portal, event=ICaseSigned, actions=[move], title="Arkivera undertecknade ärenden")

    login(portal, "officer")
    case = make_case(signers=(ANNA, BERTIL), title="Avtal som ska arkiveras")
    case_id, uid = case.getId(), case.UID()
    esign.send_case(case)
    sign(case, ANNA)
    assert case_id in portal.objectIds(), "a case halfway signed stays where it is"
    sign(case, BERTIL)

    assert case_id not in portal.objectIds()
    archived = archive[case_id]
    assert archived.UID() == uid
    assert esign.state_of(archived) == "signed"
    assert is_locked_signed(archived)
    assert esign.validate_case(archived).signatures[-1].bottom_line
    found = api.content.find(UID=uid, unrestricted=True)
    assert [b.getPath() for b in found] == ["/".join(archived.getPhysicalPath())]


def test_a_rule_on_another_event_leaves_a_signed_case_where_it_is(portal, officer, make_case, as_manager):
    api.content.create(container=portal, type="Folder", id="arkiv", title="Arkiv")
    move = MoveAction()
    move.target_folder = "/arkiv"
    add_rule(portal, event=ICaseDeclined, actions=[move], title="Arkivera avböjda ärenden")

    login(portal, "officer")
    case = make_case(signers=(ANNA,))
    esign.send_case(case)
    sign(case, ANNA)
    assert case.getId() in portal.objectIds()


@pytest.fixture()
def mailing_site(functional_portal, monkeypatch):
    monkeypatch.setattr(mail, "QUEUE_INTERVAL", 0.2)
    mailhost = api.portal.get_tool("MailHost")
    mail.ensure_queue_processor(mailhost, restart=True)
    user = api.user.create(email="officer@regionen.se", username="officer", password="officer-secret-1")
    api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    transaction.commit()
    yield functional_portal
    mail.stop_queue_processor(mailhost)


def test_a_rule_mails_the_registry_office_when_a_case_is_signed(mailing_site, pdf_bytes):
    notice = MailAction()
    notice.recipients = "registrator@regionen.se"
    notice.source = "e-underskrift@regionen.se"
    notice.subject = "Undertecknat: ${title}"
    notice.message = "Ärendet ${title} är undertecknat av alla parter: ${absolute_url}"
    add_rule(mailing_site, event=ICaseSigned, actions=[notice], title="Meddela registraturen")
    title = f"Avtal {uuid.uuid4().hex[:8]}"
    with api.env.adopt_user(username="officer"):
        case = api.content.create(
            container=mailing_site,
            type="SigningCase",
            title=title,
            information_class="K2",
            document=NamedBlobFile(pdf_bytes, filename="avtal.pdf", contentType="application/pdf"),
            signers=[dict(ANNA)],
        )
        esign.send_case(case)
    transaction.commit()
    sign(case, ANNA)
    transaction.commit()

    message = MAIL.wait_for(
        lambda m: "registrator@regionen.se" in m["To"] and title in m["Subject"], timeout=15
    )
    assert message["Subject"] == f"Undertecknat: {title}"
    assert case.absolute_url() in text_of(message)
    assert ANNA["personal_number"] not in text_of(message)
