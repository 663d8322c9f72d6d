"""Which mail goes to whom, and when. The messages themselves live in ``notify``.

Mails go through MailHost's queue: they leave after the transaction commits and
are retried while the SMTP server is away, so a transition never waits for,
or is lost to, a mail server.
"""

from __future__ import annotations

from plone import api

from esign.plone import audit, logger
from esign.plone.content.signing_case import PENDING, SIGNED
from esign.plone.workflow.links import issue_link, link_url


def _notify():
    from esign.plone.notify import mail

    return mail


def _queued(case, *, recipient: str, kind: str, message_id: str | None = None) -> None:
    # Handed to MailHost's queue: delivery happens after commit and is not reported back here;
    # the Message-ID ties the entry to the SMTP server's log.
    audit.record(
        case, "mail_queued", actor="system", recipient=recipient, kind=kind, message_id=message_id or ""
    )


def officer_email(case) -> str | None:
    user = api.user.get(userid=case.Creator())
    return user.getProperty("email") if user is not None else None


def download_url(case) -> str:
    return f"{api.portal.get().absolute_url()}/@@esign-download?case={case.UID()}"


def invite(case, record) -> None:
    message_id = _notify().send_invitation(case, record, link=link_url(issue_link(case, record)))
    _queued(case, recipient=audit.actor_for_signer(record), kind="invitation", message_id=message_id)
    record.invited = True
    logger.info("Invitation queued for signer %s of case %s", record.position, case.UID())


def invite_due_signers(case) -> None:
    """Parallel: everyone at once. Sequential: the first pending signer, once the earlier ones signed."""
    records = list(case.signer_records or ())
    if case.signing_order == "sequential":
        due = next((r for r in records if r.status != SIGNED), None)
        targets = [due] if due is not None and due.status == PENDING else []
    else:
        targets = [r for r in records if r.status == PENDING]
    for record in targets:
        if not getattr(record, "invited", False):
            invite(case, record)


def case_declined(case, record) -> None:
    email = officer_email(case)
    if email:
        message_id = _notify().send_declined(case, record, officer_email=email, case_url=case.absolute_url())
        _queued(case, recipient="officer", kind="declined", message_id=message_id)


def case_completed(case) -> None:
    parties = [(r.name, r.email) for r in case.signer_records or ()]
    message_ids = _notify().send_completed(case, recipients=parties, download_url=download_url(case))
    for record, message_id in zip(case.signer_records or (), message_ids or (), strict=False):
        _queued(case, recipient=audit.actor_for_signer(record), kind="completed", message_id=message_id)
    email = officer_email(case)
    if email:
        message_id = _notify().send_officer_completed(case, officer_email=email, case_url=case.absolute_url())
        _queued(case, recipient="officer", kind="completed", message_id=message_id)


def send_copy(case) -> int:
    """The officer sends every party a digital copy (a link to the signed document)."""
    count = 0
    for record in case.signer_records or ():
        message_id = _notify().send_copy(
            case, recipient=(record.name, record.email), download_url=download_url(case)
        )
        _queued(case, recipient=audit.actor_for_signer(record), kind="copy", message_id=message_id)
        count += 1
    return count
