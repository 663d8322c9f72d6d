"""The signing case's life: draft → awaiting signature → signed / declined."""

import pytest
from plone import api
from plone.app.testing import login

from esign.plone import api as esign
from esign.plone.errors import (
    AlreadySigned,
    CaseLocked,
    IdentityMismatch,
    InvalidInput,
    NotFound,
    WrongState,
)
from esign.plone.interfaces import ISignable
from esign.plone.workflow.cases import is_locked_signed
from helpers.site import ANNA, BERTIL, STAFF, identity_of


@pytest.fixture()
def officer_case(portal, officer, make_case):
    login(portal, "officer")
    return make_case()


def record_for(case, row):
    key = row.get("personal_number") or row.get("hsa_id")
    return next(r for r in case.signer_records if key in (r.personal_number, r.hsa_id))


def test_a_new_case_is_a_draft_only_its_officer_and_managers_can_see(portal, officer_case):
    assert esign.state_of(officer_case) == "draft"
    roles_with_view = {
        p["name"] for p in officer_case.rolesOfPermission("View") if p["selected"] == "SELECTED"
    }
    assert roles_with_view == {"Manager", "Site Administrator", "Owner"}
    api.user.create(email="other@example.se", username="other", password="other-secret-1")
    api.user.grant_roles(username="other", roles=["SigningOfficer"])
    assert not api.user.has_permission("View", username="other", obj=officer_case)
    assert api.user.has_permission("View", username="officer", obj=officer_case)


def test_sending_freezes_the_signers_and_gives_each_the_signer_role(portal, officer_case):
    esign.send_case(officer_case)
    assert esign.state_of(officer_case) == "awaiting_signature"
    records = esign.signer_records(officer_case)
    assert [r.name for r in records] == [ANNA["name"], BERTIL["name"]]
    for record in records:
        assert officer_case.get_local_roles_for_userid(record.principal_id) == ("Signer",)
        # The principal id is a salted hash, never the personnummer.
        assert record.personal_number not in record.principal_id
    assert not api.user.has_permission("Modify portal content", username="officer", obj=officer_case)


def test_a_case_without_signers_cannot_be_sent(portal, officer, make_case):
    login(portal, "officer")
    case = make_case(signers=())
    with pytest.raises(InvalidInput):
        esign.send_case(case)
    assert esign.state_of(case) == "draft"
    transitions = [t["id"] for t in api.portal.get_tool("portal_workflow").getTransitionsFor(case)]
    assert "send" not in transitions


def test_two_signers_sign_and_the_case_becomes_signed_and_locked(portal, officer_case):
    esign.send_case(officer_case)
    first = esign.sign_case(
        officer_case, signer_id=record_for(officer_case, ANNA).signer_id, identity=identity_of(ANNA)
    )
    assert esign.state_of(officer_case) == "awaiting_signature"
    second = ISignable(officer_case).sign(record_for(officer_case, BERTIL).signer_id, identity_of(BERTIL))
    assert esign.state_of(officer_case) == "signed"
    assert is_locked_signed(officer_case)
    assert first.certificate_serial != second.certificate_serial
    assert "PNOSE-191212121212" in first.certificate_subject
    assert "PNOSE-194911172296" in second.certificate_subject

    report = ISignable(officer_case).validate()
    assert [s.signer_serial_number for s in report.signatures] == ["PNOSE-191212121212", "PNOSE-194911172296"]
    assert report.all_valid
    # B-LTA: the DSS and the document timestamp come after the last signature.
    assert report.signatures[-1].coverage == "entire revision"
    record = record_for(officer_case, ANNA)
    assert record.authentication["method"] == "bankid"
    assert record.authentication["transaction_ref"] == "order-0001"


def test_a_staff_signer_named_by_hsa_id_signs_with_the_hsa_id_in_the_certificate(portal, officer, make_case):
    login(portal, "officer")
    case = make_case(signers=(STAFF,))
    esign.send_case(case)
    result = esign.sign_case(case, signer_id=record_for(case, STAFF).signer_id, identity=identity_of(STAFF))
    assert "SE2321000016-1003" in result.certificate_subject
    assert esign.state_of(case) == "signed"


def test_someone_else_cannot_sign_in_a_signers_place(portal, officer_case):
    esign.send_case(officer_case)
    with pytest.raises(IdentityMismatch):
        esign.sign_case(
            officer_case, signer_id=record_for(officer_case, ANNA).signer_id, identity=identity_of(BERTIL)
        )
    assert officer_case.signed_document is None
    assert record_for(officer_case, ANNA).status == "pending"


def test_a_signer_cannot_sign_twice(portal, officer_case):
    esign.send_case(officer_case)
    signer_id = record_for(officer_case, ANNA).signer_id
    esign.sign_case(officer_case, signer_id=signer_id, identity=identity_of(ANNA))
    with pytest.raises(AlreadySigned):
        esign.sign_case(officer_case, signer_id=signer_id, identity=identity_of(ANNA))


def test_a_draft_cannot_be_signed(portal, officer_case):
    esign.send_case(officer_case)
    signer_id = record_for(officer_case, ANNA).signer_id
    esign.withdraw_case(officer_case)
    assert esign.state_of(officer_case) == "draft"
    with pytest.raises(NotFound):  # the signer record is gone with the withdrawal
        esign.sign_case(officer_case, signer_id=signer_id, identity=identity_of(ANNA))
    assert officer_case.signed_document is None


def test_in_sequential_order_the_second_signer_waits_for_the_first(portal, officer, make_case):
    login(portal, "officer")
    case = make_case(signing_order="sequential")
    esign.send_case(case)
    with pytest.raises(WrongState):
        esign.sign_case(case, signer_id=record_for(case, BERTIL).signer_id, identity=identity_of(BERTIL))
    esign.sign_case(case, signer_id=record_for(case, ANNA).signer_id, identity=identity_of(ANNA))
    esign.sign_case(case, signer_id=record_for(case, BERTIL).signer_id, identity=identity_of(BERTIL))
    assert esign.state_of(case) == "signed"


def test_a_decline_with_a_reason_moves_the_case_to_declined(portal, officer_case):
    esign.send_case(officer_case)
    esign.decline_case(
        officer_case, signer_id=record_for(officer_case, BERTIL).signer_id, reason="Fel belopp i avtalet"
    )
    assert esign.state_of(officer_case) == "declined"
    assert record_for(officer_case, BERTIL).decline_reason == "Fel belopp i avtalet"
    with pytest.raises(WrongState):
        esign.sign_case(
            officer_case, signer_id=record_for(officer_case, ANNA).signer_id, identity=identity_of(ANNA)
        )


def test_the_officer_cannot_withdraw_once_someone_has_signed(portal, officer_case):
    esign.send_case(officer_case)
    esign.sign_case(
        officer_case, signer_id=record_for(officer_case, ANNA).signer_id, identity=identity_of(ANNA)
    )
    with pytest.raises(WrongState):
        esign.withdraw_case(officer_case)
    transitions = [t["id"] for t in api.portal.get_tool("portal_workflow").getTransitionsFor(officer_case)]
    assert transitions == []


def test_managers_see_no_complete_transition_before_everyone_signed(portal, officer_case):
    esign.send_case(officer_case)
    wf = api.portal.get_tool("portal_workflow")
    with api.env.adopt_roles(["Manager"]):
        ids = [t["id"] for t in wf.getTransitionsFor(officer_case)]
    assert "complete" not in ids and "decline" not in ids


def test_scripts_editing_a_sent_case_through_events_are_refused(portal, officer_case):
    esign.send_case(officer_case)
    with pytest.raises(CaseLocked), api.env.adopt_roles(["Manager"]):
        officer_case.title = "Ändrad"
        from zope.event import notify
        from zope.lifecycleevent import ObjectModifiedEvent

        notify(ObjectModifiedEvent(officer_case))


def test_pending_cases_are_found_by_identity_without_storing_the_number_in_the_catalog(portal, officer_case):
    esign.send_case(officer_case)
    found = esign.cases_for_identity(personal_number=ANNA["personal_number"])
    assert found == [officer_case]
    catalog = api.portal.get_tool("portal_catalog")
    index = catalog._catalog.getIndex("esign_signer_keys")
    assert all(ANNA["personal_number"] not in str(k) for k in index.uniqueValues())


def test_a_script_made_case_with_a_bad_personnummer_is_not_sent(portal, officer, make_case):
    login(portal, "officer")
    case = make_case(signers=({**ANNA, "personal_number": "191212121213"},))
    with pytest.raises(InvalidInput, match="kontrollsiffra"):
        esign.send_case(case)
    assert esign.state_of(case) == "draft"


def test_each_case_keeps_its_own_annotations(portal, officer, make_case):
    """A class-level ``__annotations__`` would make one store for every case (audit, locks)."""
    from zope.annotation.interfaces import IAnnotations

    login(portal, "officer")
    first, second = make_case(title="Ett"), make_case(title="Två")
    IAnnotations(first)["esign.test"] = "ett"
    assert "esign.test" not in IAnnotations(second)
    assert IAnnotations(first) is not IAnnotations(second)
