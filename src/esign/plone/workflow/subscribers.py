"""Workflow glue: what each transition does to the case."""

from __future__ import annotations

from esign.plone import audit
from esign.plone.content.schema import normalize_signer_row
from esign.plone.errors import CaseLocked, InvalidInput
from esign.plone.workflow import cases, notifications
from esign.plone.workflow.links import revoke_links


def after_transition(case, event) -> None:
    transition = getattr(event, "action", None)
    if transition == "send":
        cases.freeze(case)
        audit.record(
            case,
            "sent",
            actor=audit.current_actor(),
            signers=len(case.signer_records or ()),
            signing_order=case.signing_order,
        )
        notifications.invite_due_signers(case)
    elif transition == "withdraw":
        audit.record(case, "withdrawn", actor=audit.current_actor())
        revoke_links(case)
        cases.unfreeze(case)
    elif transition == "complete":
        audit.record(case, "completed", actor="system", signatures=len(case.signer_records or ()))
        cases.lock_signed(case)
        revoke_links(case)
        from esign.plone import evidence

        evidence.create_evidence(case)
        notifications.case_completed(case)
    elif transition == "decline":
        revoke_links(case)
        declined = next((r for r in case.signer_records if r.status == "declined"), None)
        if declined is not None:
            notifications.case_declined(case, declined)


def refuse_changes_after_send(case, event) -> None:
    """Belt and braces behind the workflow permissions: a sent case is frozen.

    Permissions already keep every form, REST call and WebDAV request out; this
    stops code that edits through the normal events (``api.content`` scripts,
    content rules) from changing a document someone has signed or is signing.
    """
    if cases.state_of(case) == cases.DRAFT:
        normalize_signers(case, event)
        return
    raise CaseLocked(
        "Ärendet är skickat för underskrift och kan inte ändras. "
        "Ändringar av en undertecknad handling gör den ogiltig."
    )


def normalize_signers(case, event) -> None:
    """Store personnummer as 12 digits and HSA-ids in canonical form, whichever door they came by.

    Validation already ran (form, REST, ``api.content.create`` with ``safe_id``
    or not), so this only rewrites formats; a row it cannot read is left for the
    send-time check to refuse.
    """
    rows = []
    for row in case.signers or ():
        try:
            rows.append(normalize_signer_row(dict(row)))
        except InvalidInput:
            rows.append(dict(row))
    if rows != list(case.signers or ()):
        case.signers = rows


def record_created(case, event) -> None:
    """Start the case's audit trail; a pasted copy (a new UID) starts its own, not the original's."""
    trail = audit.entries(case)
    if trail and trail[0].data.get("uid") == case.UID():
        return  # the same case imported again: its history goes on
    audit.reset(case)
    audit.record(case, "created", actor=audit.current_actor(), uid=case.UID())
