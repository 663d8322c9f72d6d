"""A sent case over time: reminders, expiry at the deadline, withdrawal notices, email corrections.

Time-driven work runs from :func:`tick`, which a scheduler calls through the
``esign-tick`` console script or the ``@@esign-tick`` view. It is idempotent: a
case that has expired is no longer ``awaiting_signature``, and a reminder moves
the signer's ``last_notified``, so a second run finds nothing to do. Several
instances may run it at once: both change the same case and signer record, so
one of them gets a ZODB conflict, aborts (its queued mails vanish with the
transaction) and, retried, finds the work done.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import datetime as dt
import json
import os
import sys
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

from plone import api

from esign.plone import audit, logger
from esign.plone.content.identifiers import normalize_email
from esign.plone.content.signing_case import PENDING, SIGNED, SignerRecord
from esign.plone.errors import ESignError, InvalidInput, NotFound, WrongState
from esign.plone.workflow import cases
from esign.plone.workflow.links import SWEDEN, issue_link, link_url, revoke_links
from esign.plone.workflow.notifications import officer_email

__all__ = [
    "EXPIRED_STATE",
    "correct_email",
    "deadline_passed",
    "due_signers",
    "expire_due",
    "last_notified",
    "main",
    "remind",
    "remind_due",
    "swedish_today",
    "tick",
]

EXPIRED_STATE = "expired"
DEFAULT_REMINDER_INTERVAL_DAYS = 3
#: How often a site's tick is tried when another instance changed the same cases meanwhile.
ATTEMPTS = 3

_NOW: contextvars.ContextVar[dt.datetime | None] = contextvars.ContextVar("esign_lifecycle_now", default=None)


def _mail():
    from esign.plone.notify import mail

    return mail


# -- time ------------------------------------------------------------------------


def current_time() -> dt.datetime:
    """Now, or the ``now`` a caller of :func:`expire_due` asked for (the guard reads it too)."""
    return _NOW.get() or dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def _clock(now: dt.datetime) -> Iterator[None]:
    token = _NOW.set(now)
    try:
        yield
    finally:
        _NOW.reset(token)


def _aware(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return current_time()
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    return now


def swedish_today(now: dt.datetime | None = None) -> dt.date:
    """The date it is in Sweden: deadlines are Swedish dates."""
    return _aware(now).astimezone(SWEDEN).date()


def deadline_passed(case, *, now: dt.datetime | None = None) -> bool:
    """True once the case's last day to sign (a date in Swedish time) is over."""
    deadline = getattr(case, "deadline", None)
    if not deadline:
        return False
    return swedish_today(now) > deadline


# -- who is due --------------------------------------------------------------------


def due_signers(case) -> list[SignerRecord]:
    """Pending signers whose turn it is: all of them in parallel order, the next one in sequence."""
    records = list(case.signer_records or ())
    if case.signing_order == "sequential":
        upcoming = next((r for r in records if r.status != SIGNED), None)
        return [upcoming] if upcoming is not None and upcoming.status == PENDING else []
    return [r for r in records if r.status == PENDING]


def _sent_at(case) -> dt.datetime | None:
    history = getattr(case, "workflow_history", {}).get("esign_signing_case_workflow", ())
    sends = [entry["time"] for entry in history if entry.get("action") == "send"]
    return sends[-1].asdatetime() if sends else None


def last_notified(case, record: SignerRecord) -> dt.datetime | None:
    """When the signer was last mailed a link; ``None`` if never.

    Records invited before ``last_notified`` existed count from when their
    invitation went out: the send, or in sequence the previous signature.
    """
    value = getattr(record, "last_notified", None)
    if value is not None:
        return value
    if not getattr(record, "invited", False):
        return None
    moments = [_sent_at(case)]
    if case.signing_order == "sequential":
        moments += [r.signed_at for r in case.signer_records if r.position < record.position]
    moments = [m for m in moments if m is not None]
    return max(moments) if moments else None


def _notify_signer(case, record: SignerRecord, *, kind: str, now: dt.datetime) -> None:
    """Mail the signer a fresh link (earlier links stay valid) and note when."""
    link = link_url(issue_link(case, record))
    send = _mail().send_reminder if kind == "reminder" else _mail().send_invitation
    message_id = send(case, record, link=link)
    audit.record(
        case,
        "mail_queued",
        actor="system",
        recipient=audit.actor_for_signer(record),
        kind=kind,
        message_id=message_id or "",
    )
    record.invited = True
    # UTC: a ZoneInfo time zone does not pickle into the ZODB.
    record.last_notified = now.astimezone(dt.UTC)


# -- reminders ---------------------------------------------------------------------


def remind(case, *, signer_ids: list[str] | None = None, actor: str) -> int:
    """Mail pending signers whose turn it is ("Påminn") a reminder with a fresh "Hantera ärendet" link.

    :param signer_ids: only these signers (each must be in the case); default every due signer.
    :param actor: who asks, for the audit trail (``"user:<userid>"``, ``"system"``).
    :returns: how many signers were reminded.
    :raises WrongState: unless the case awaits signatures.
    :raises NotFound: a signer id is not in the case.

    >>> remind(case, actor=audit.current_actor())
    2
    """
    if cases.state_of(case) != cases.AWAITING:
        raise WrongState("Bara ett ärende som väntar på underskrift kan få påminnelser.")
    targets = due_signers(case)
    if signer_ids is not None:
        wanted = set(signer_ids)
        if wanted - {r.signer_id for r in case.signer_records or ()}:
            raise NotFound("Undertecknaren finns inte i ärendet.")
        targets = [r for r in targets if r.signer_id in wanted]
    return _remind(case, targets, actor=actor, now=current_time())


def _remind(case, records: Sequence[SignerRecord], *, actor: str, now: dt.datetime) -> int:
    for record in records:
        _notify_signer(case, record, kind="reminder", now=now)
        audit.record(case, "reminded", actor=actor, signer=audit.actor_for_signer(record))
        logger.info("Reminder for signer %s of case %s", record.position, case.UID())
    return len(records)


def reminder_interval() -> dt.timedelta | None:
    days = api.portal.get_registry_record(
        "esign.reminder_interval_days", default=DEFAULT_REMINDER_INTERVAL_DAYS
    )
    return dt.timedelta(days=days) if days else None


def remind_due(*, now: dt.datetime | None = None) -> int:
    """Remind every due signer whose last mail is at least ``esign.reminder_interval_days`` old.

    :returns: how many signers were reminded (0 when the interval is 0: reminders off).
    """
    now = _aware(now)
    interval = reminder_interval()
    if interval is None:
        return 0
    count = 0
    for case in _awaiting_cases():
        if deadline_passed(case, now=now):
            continue  # expiry, not a reminder, is what this case needs
        due = [r for r in due_signers(case) if (last := last_notified(case, r)) and now - last >= interval]
        count += _remind(case, due, actor="system", now=now)
    return count


# -- expiry ------------------------------------------------------------------------


def expire_due(*, now: dt.datetime | None = None) -> list[str]:
    """Move every case whose last day to sign is over to ``expired``.

    The transition's subscriber revokes the links and tells the officer; the
    pending signers can no longer sign, because only an ``awaiting_signature``
    case takes signatures.

    :returns: the UIDs of the cases expired by this call.
    """
    now = _aware(now)
    expired = []
    for case in _awaiting_cases():
        if not deadline_passed(case, now=now):
            continue
        with _clock(now), api.env.adopt_roles(["Manager"]):
            api.content.transition(obj=case, transition="expire")
        expired.append(case.UID())
        logger.info("Case %s expired (last day %s)", case.UID(), case.deadline)
    return expired


# -- archival renewal of document timestamps ---------------------------------------

#: A document just renewed is not renewed again for this long, even if an external TSA's
#: certificate is itself about to expire (the next run after that will try again).
RENEWAL_PAUSE = dt.timedelta(days=30)


def renewal_margin() -> dt.timedelta:
    return dt.timedelta(days=api.portal.get_registry_record("esign.archive_renewal_days", default=365) or 365)


def renew_archive_timestamps(*, now: dt.datetime | None = None) -> list[str]:
    """Renew the document timestamp of every signed case whose TSA certificate expires within the margin.

    First the site TSA gets a fresh certificate if its own runs out within the margin,
    so the new timestamps last. Idempotent: a renewed case is not due again for years.

    :returns: the UIDs of the cases renewed by this call.
    """
    from esign.plone.sitepki import ensure_tsa, uses_external_tsa

    now = _aware(now)
    margin = renewal_margin()
    if not uses_external_tsa():
        ensure_tsa(now=now)
    renewed = []
    brains = api.content.find(portal_type="SigningCase", review_state="signed", unrestricted=True)
    for brain in brains:
        case = brain._unrestrictedGetObject()
        expiry = getattr(case, "archive_timestamp_expiry", None)
        if expiry is None or expiry - margin > now:
            continue
        last = getattr(case, "archive_renewed_at", None)
        if last is not None and now - last < RENEWAL_PAUSE:
            continue
        cases.renew_archive_timestamp(case, moment=now)
        case.archive_renewed_at = now
        renewed.append(case.UID())
        logger.info(
            "Case %s: archive timestamp renewed (next expiry %s)", case.UID(), case.archive_timestamp_expiry
        )
    return renewed


def case_expired(case, event) -> None:
    """After "expire": links die, the officer is told."""
    if getattr(event, "action", None) != "expire":
        return
    revoke_links(case)
    pending = [audit.actor_for_signer(r) for r in case.signer_records or () if r.status == PENDING]
    audit.record(case, "expired", actor="system", deadline=str(case.deadline), pending=pending)
    email = officer_email(case)
    if email:
        message_id = _mail().send_expired(case, officer_email=email, case_url=case.absolute_url())
        audit.record(
            case, "mail_queued", actor="system", recipient="officer", kind="expired", message_id=message_id
        )


# -- withdrawal --------------------------------------------------------------------


def case_withdrawing(case, event) -> None:
    """Before "withdraw" (which forgets the signer records): tell every invited signer."""
    transition = getattr(event, "transition", None)
    if transition is None or transition.getId() != "withdraw":
        return
    for record in case.signer_records or ():
        if getattr(record, "invited", False) and record.status == PENDING:
            message_id = _mail().send_withdrawn(case, record)
            audit.record(
                case,
                "mail_queued",
                actor="system",
                recipient=audit.actor_for_signer(record),
                kind="withdrawn",
                message_id=message_id,
            )


# -- email correction --------------------------------------------------------------


def correct_email(case, *, signer_id: str, email: str, actor: str) -> None:
    """Give a pending signer a new email address; who must sign (personnummer, HSA-id) stays.

    If it is the signer's turn, a fresh link goes to the new address; links sent
    to the old address keep working until the deadline, since they still lead to
    a login as the same person.

    :raises WrongState: unless the case awaits signatures and the signer has not answered.
    :raises InvalidInput: the address is not valid, or unchanged.
    :raises NotFound: no such signer in the case.
    """
    if cases.state_of(case) != cases.AWAITING:
        raise WrongState("Bara i ett ärende som väntar på underskrift kan en e-postadress rättas.")
    record = cases.get_signer(case, signer_id)
    if record.status != PENDING:
        raise WrongState("Undertecknaren har redan svarat; adressen kan inte längre rättas.")
    new = normalize_email(email)
    if new.lower() == (record.email or "").lower():
        raise InvalidInput("Det är samma e-postadress som förut.", field="email")
    old = record.email
    record.email = new
    _correct_signer_row(case, record, new)
    mailed = record in due_signers(case)
    audit.record(
        case,
        "email_corrected",
        actor=actor,
        signer=audit.actor_for_signer(record),
        old_email=old,
        new_email=new,
        mailed=mailed,
    )
    if mailed:
        _notify_signer(case, record, kind="invitation", now=current_time())
    logger.info("Email of signer %s of case %s corrected", record.position, case.UID())


def _correct_signer_row(case, record: SignerRecord, email: str) -> None:
    # The draft's signer list comes back if the case is withdrawn: keep it in step.
    rows = [dict(row) for row in case.signers or ()]
    index = record.position - 1
    if 0 <= index < len(rows):
        row = rows[index]
        if (row.get("personal_number") or None, row.get("hsa_id") or None) == (
            record.personal_number,
            record.hsa_id,
        ):
            row["email"] = email
            case.signers = rows


# -- the scheduler's entry -----------------------------------------------------------


def _awaiting_cases() -> list:
    with api.env.adopt_roles(["Manager"]):
        brains = api.content.find(portal_type="SigningCase", review_state=cases.AWAITING, unrestricted=True)
        found = [b._unrestrictedGetObject() for b in brains]
    # The catalog may be behind what another instance committed: the state decides.
    return [case for case in found if cases.state_of(case) == cases.AWAITING]


def tick(*, now: dt.datetime | None = None) -> dict:
    """Expire what is past its deadline, send the reminders that are due, note mail outcomes.

    The outcomes the mail queue logged since the last run go into the cases'
    audit trails (``mail_delivered``, ``mail_failed``; see
    :func:`esign.plone.notify.mail.record_deliveries`).
    Nothing is committed here: the caller (the view, the console script) decides.

    Signed documents whose archive timestamp is due get a new one (B-LTA renewal).

    :returns: ``{"expired": [UID, ...], "reminded": n, "deliveries": n, "renewed": [UID, ...]}``.
    """
    now = _aware(now)
    return {
        "expired": expire_due(now=now),
        "reminded": remind_due(now=now),
        "deliveries": _mail().record_deliveries(),
        "renewed": renew_archive_timestamps(now=now),
    }


def _open_zope_app(zope_conf: str):
    """Start Zope from ``zope_conf`` in this process, as ``zconsole run`` does; return the app."""
    import Zope2
    from AccessControl.SecurityManagement import newSecurityManager
    from AccessControl.users import system
    from Testing.makerequest import makerequest
    from zope.globalrequest import setRequest
    from Zope2.Startup.run import make_wsgi_app

    make_wsgi_app({}, zope_conf)
    app = makerequest(Zope2.app())
    app.REQUEST["PARENTS"] = [app]
    setRequest(app.REQUEST)
    newSecurityManager(None, system)
    return app


def _address_site(request, site, url: str) -> None:
    """Make ``site.absolute_url()`` answer ``url``, as a virtual host behind a proxy would."""
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"Not an http(s) address: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    request.setServerURL(protocol=parts.scheme, hostname=parts.hostname, port=port)
    request.setVirtualRoot([p for p in parts.path.split("/") if p])
    request.other["VirtualRootPhysicalPath"] = site.getPhysicalPath()


def _deliver_queued_mail(site) -> None:
    """One pass over the MailHost queue, so that a run from cron does not wait for an instance."""
    from esign.plone.notify.mail import RetryingQueueProcessor

    mailhost = site.MailHost
    if not mailhost.smtp_queue:
        return
    processor = RetryingQueueProcessor()
    processor.setMailer(mailhost._makeMailer())
    processor.setQueuePath(mailhost.smtp_queue_directory)
    processor.run(forever=False)


def tick_sites(
    app, *, site_ids: Sequence[str] | None = None, url: str | None = None, now: dt.datetime | None = None
) -> dict:
    """Run :func:`tick` on each esign.plone site of ``app`` (or the named ones) and commit each.

    :returns: ``{site id: {"expired": [...], "reminded": n} or {"error": message}}``.
    """
    import transaction
    from ZODB.POSException import ConflictError
    from zope.component.hooks import setSite

    sites = {s.getId(): s for s in app.objectValues("Plone Site")}
    results: dict[str, dict] = {}
    for site_id in site_ids or list(sites):
        site = sites.get(site_id)
        if site is None:
            results[site_id] = {"error": "no such Plone site"}
            continue
        setSite(site)
        try:
            if api.portal.get_registry_record("esign.internal.hash_salt", default=None) is None:
                if site_ids:
                    results[site_id] = {"error": "esign.plone is not installed"}
                continue
            public = url or api.portal.get_registry_record("esign.public_url", default=None)
            if not public:
                results[site_id] = {
                    "error": "the links in mails need the site's address: set esign.public_url or pass --url"
                }
                continue
            _address_site(app.REQUEST, site, public)
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    results[site_id] = tick(now=now)
                    transaction.commit()
                    break
                except ConflictError:
                    transaction.abort()
                    logger.info("esign-tick on %s met a conflict (attempt %s)", site_id, attempt)
                    if attempt == ATTEMPTS:
                        raise
            _deliver_queued_mail(site)
        except Exception as exc:
            transaction.abort()
            logger.exception("esign-tick failed on site %s", site_id)
            results[site_id] = {"error": exc.message if isinstance(exc, ESignError) else repr(exc)}
        finally:
            setSite(None)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``esign-tick path/to/zope.conf [--site Plone] [--url https://...]``: one scheduled run.

    Prints one line of JSON, ``{"<site id>": {"expired": [...], "reminded": n}}``;
    exits 1 if any site failed.
    """
    parser = argparse.ArgumentParser(
        prog="esign-tick",
        description="Expire signing cases past their last day and send the reminders that are due.",
    )
    parser.add_argument("zope_conf", help="the instance's zope.conf")
    parser.add_argument(
        "--site", action="append", help="a Plone site id (repeatable); default: every site with esign.plone"
    )
    parser.add_argument(
        "--url", help="the site's public address for links in mails; default: the esign.public_url setting"
    )
    args = parser.parse_args(argv)
    if args.url and args.site and len(args.site) > 1:
        parser.error("--url names one site's address; run once per site")
    # Queue only: the run ends right away, and a processor thread killed mid-send would
    # hold a mail back for hours. _deliver_queued_mail makes one pass after each commit.
    os.environ.setdefault("MAILHOST_QUEUE_ONLY", "1")
    app = _open_zope_app(args.zope_conf)
    try:
        results = tick_sites(app, site_ids=args.site, url=args.url)
    finally:
        app._p_jar.db().close()
    print(json.dumps(results, ensure_ascii=False, sort_keys=True))
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
