"""Mail to signers and officers, sent through Plone's MailHost after the transaction commits.

Every mail is queued (zope.sendmail's maildir queue behind ``MailHost.smtp_queue``):
``MailHost.send`` only joins the transaction, the file appears in the queue's
``new/`` folder when the transaction commits and disappears when it aborts, and
a processor thread hands it to the SMTP server. While the server is down the
file stays and is tried again on every pass, so an outage costs neither a mail
nor the transition that caused it.

What became of each mail, the processor notes in ``<queue>/delivery.log``, one
JSON line per outcome (:func:`delivery_outcomes` reads it). The processor has
no ZODB connection; :func:`record_deliveries`, run by the scheduler's tick,
copies the outcomes into the cases' audit trails (``mail_delivered``,
``mail_failed``). Every mail names its case in an ``X-ESign-Case`` header (the
case's UID).

The texts follow Vårdgivarguiden's "Underskriftsärende – så går det till". No
mail and no log line carries a personnummer.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import html
import json
import os
import re
import smtplib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import formatdate, make_msgid
from pathlib import Path

from plone import api
from plone.base.interfaces import IMailSchema
from Products.MailHost.MailHost import MailBase, queue_threads
from zope.sendmail.maildir import Maildir
from zope.sendmail.queue import QueueProcessorThread

from esign.plone import logger
from esign.plone.errors import ESignError

__all__ = [
    "QUEUE_INTERVAL",
    "MailSettings",
    "RetryingQueueProcessor",
    "configure_mailhost",
    "delivery_outcomes",
    "ensure_queue_processor",
    "record_deliveries",
    "send_completed",
    "send_copy",
    "send_declined",
    "send_invitation",
    "send_officer_completed",
    "stop_queue_processor",
]

#: Seconds between two passes of the queue processor (zope.sendmail's default).
QUEUE_INTERVAL = 3.0

_QUEUE_OFF = {"off", "0", "false", "no", "immediate"}

#: The file in the queue directory where the processor notes each mail's outcome.
DELIVERY_LOG = "delivery.log"
#: The header that names the case a mail is about (its UID).
CASE_HEADER = "X-ESign-Case"
#: Portal annotation: how far :func:`record_deliveries` has read the delivery log.
OFFSET_KEY = "esign.plone.mail_delivery_offset"


# -- settings ----------------------------------------------------------------------


@dataclass(frozen=True)
class MailSettings:
    """What :func:`configure_mailhost` applied to the site's MailHost."""

    #: The SMTP server's host name.
    host: str
    #: The SMTP server's port.
    port: int
    #: The maildir queue; ``None`` when mail goes straight to the server at commit.
    queue_directory: str | None
    #: Sender address of every mail (Plone's ``email_from_address``).
    from_address: str
    #: Sender name of every mail (Plone's ``email_from_name``).
    from_name: str


def _mail_schema():
    return api.portal.get_tool("portal_registry").forInterface(IMailSchema, prefix="plone")


def _default_queue_directory() -> Path:
    env = os.environ.get("ESIGN_MAIL_QUEUE", "").strip()
    if env:
        return Path(env)
    from App.config import getConfiguration

    clienthome = getattr(getConfiguration(), "clienthome", None)
    if clienthome:
        return Path(clienthome) / "esign-mailqueue"
    # A fixed name, not mkdtemp(): mail queued before a restart must be found again.
    path = Path(tempfile.gettempdir()) / f"esign-mailqueue-{os.getuid()}"
    logger.warning("No ESIGN_MAIL_QUEUE and no clienthome: queueing mail in %s", path)
    return path


def configure_mailhost(
    *,
    host: str | None = None,
    port: int | None = None,
    queue_directory: str | os.PathLike | None = None,
    queue: bool | None = None,
) -> MailSettings:
    """Point the current site's MailHost at the SMTP server and switch on the retrying queue.

    Each setting comes from, in this order: the argument, the environment
    (``ESIGN_SMTP_HOST``, ``ESIGN_SMTP_PORT``, ``ESIGN_MAIL_QUEUE``), Plone's
    mail settings (registry prefix ``plone``), the default (``localhost:25``;
    the queue in ``<clienthome>/esign-mailqueue`` or a folder in the temp dir).
    ``queue=False`` or ``ESIGN_MAIL_QUEUE=off`` sends at commit without a queue:
    then an unreachable server makes the commit fail.

    Plone builds every SMTP mailer from its registry settings, so the host and
    port are written there as well as on the MailHost; nothing is written when
    nothing changed. Call it at install and at process start (several
    instances with the same environment do not conflict).

    :returns: the settings in force.
    :raises ESignError: outside a Plone site.
    """
    try:
        portal = api.portal.get()
    except api.exc.CannotGetPortalError as exc:
        raise ESignError("configure_mailhost needs a Plone site.") from exc
    mailhost = api.portal.get_tool("MailHost")
    schema = _mail_schema()

    host = host or os.environ.get("ESIGN_SMTP_HOST") or schema.smtp_host or "localhost"
    port = int(port or os.environ.get("ESIGN_SMTP_PORT") or schema.smtp_port or 25)
    env_queue = os.environ.get("ESIGN_MAIL_QUEUE", "").strip().lower()
    if queue is None:
        queue = env_queue not in _QUEUE_OFF
    directory = None
    if queue:
        directory = str(Path(queue_directory or _default_queue_directory()).resolve())
        # zope.sendmail only makes a Maildir of a folder that does not exist yet; an
        # administrator's empty (or fresh mktemp) folder gets its cur/, new/, tmp/ here.
        for sub in ("cur", "new", "tmp"):
            Path(directory, sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        Maildir(directory, create=True)

    wanted = {
        "smtp_host": host,
        "smtp_port": port,
        "smtp_uid": schema.smtp_userid or "",
        "smtp_pwd": schema.smtp_pass or "",
        "smtp_queue": bool(queue),
        "smtp_queue_directory": directory or mailhost.smtp_queue_directory,
    }
    previous_key = mailhost._getThreadKey()
    for name, value in wanted.items():
        if getattr(mailhost, name, None) != value:
            setattr(mailhost, name, value)
    if schema.smtp_host != host:
        schema.smtp_host = host
    if schema.smtp_port != port:
        schema.smtp_port = port

    if previous_key != mailhost._getThreadKey() or not queue:
        _stop_thread(previous_key)
    if queue:
        ensure_queue_processor(mailhost, restart=True)

    settings = MailSettings(
        host=host,
        port=port,
        queue_directory=directory,
        from_address=schema.email_from_address or "",
        from_name=schema.email_from_name or portal.Title(),
    )
    logger.info(
        "Mail goes to %s:%s %s",
        host,
        port,
        f"through the queue in {directory}" if directory else "at commit, without a queue",
    )
    return settings


# -- the queue ---------------------------------------------------------------------


_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?")


def _reply_text(code: int | None, text: bytes | str | None) -> str:
    """``"550 5.1.1 Mailbox unavailable"``: short, one line, with no mail address in it."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(_ADDRESS.sub("<address>", text or "").split())
    reply = f"{code} {text}" if code is not None else text
    return reply.strip()[:200]


def _refusal_text(exc: smtplib.SMTPRecipientsRefused) -> str:
    return "; ".join(sorted({_reply_text(code, text) for code, text in exc.recipients.values()}))


class _FailureRecorder:
    """Wraps the mailer to note how an attempt ended: ``delivered``, ``failed`` or ``retrying``."""

    def __init__(self, mailer) -> None:
        self.mailer = mailer
        self.failed = False
        self.outcome: tuple[str, str] | None = None
        self.message: bytes = b""

    def reset(self) -> None:
        self.failed, self.outcome, self.message = False, None, b""

    def send(self, fromaddr, toaddrs, message) -> None:
        self.message = message
        try:
            self.mailer.send(fromaddr, toaddrs, message)
        except smtplib.SMTPRecipientsRefused as exc:
            self.outcome = ("failed", _refusal_text(exc))
            raise
        except smtplib.SMTPResponseException as exc:
            self.failed = not 500 <= exc.smtp_code <= 599
            reply = _reply_text(exc.smtp_code, exc.smtp_error)
            self.outcome = ("retrying" if self.failed else "failed", reply)
            raise
        except Exception as exc:
            self.failed = True
            self.outcome = ("retrying", _reply_text(None, f"{type(exc).__name__}: {exc}"))
            raise
        # smtplib keeps no reply to DATA; the mail was accepted.
        self.outcome = ("delivered", "250 accepted")


def _message_headers(message: bytes) -> tuple[str, str]:
    """The Message-ID and the case UID of a queued mail's bytes."""
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(message)
    return (str(headers.get("Message-ID") or "").strip(), str(headers.get(CASE_HEADER) or "").strip())


def _append_outcome(queue_directory: str, line: dict) -> None:
    data = (json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(os.path.join(queue_directory, DELIVERY_LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        # One write() with O_APPEND: lines of several processors on one queue do not interleave.
        os.write(fd, data)
    finally:
        os.close(fd)


class RetryingQueueProcessor(QueueProcessorThread):
    """zope.sendmail's queue processor, retrying a mail on the next pass after a passing failure.

    The stock processor marks a mail it is sending with a ``.sending-`` hard
    link and leaves that link behind when the server is unreachable or answers
    4xx; the mail then waits ``MAX_SEND_TIME`` (three hours) before the next
    try. After our own failed attempt nobody else is sending the mail, so the
    link goes and the next pass, ``interval`` seconds later, tries again.
    Permanent refusals (5xx, all recipients refused) are still set aside as
    ``.rejected-`` files by the stock code.

    Each outcome goes to ``<queue>/delivery.log`` as one JSON line: ``time``
    (UTC), ``message_id``, ``case`` (UID, from ``X-ESign-Case``), ``status``
    (``delivered``, ``failed`` for a permanent refusal, ``retrying`` for the
    first passing failure of a mail in this processor) and ``reply`` (the SMTP
    reply, without addresses).
    """

    def __init__(self, interval: float | None = None) -> None:
        super().__init__(interval=QUEUE_INTERVAL if interval is None else interval)
        self.name = "esign.plone mail queue"
        self.queue_path: str | None = None
        self._retrying: set[str] = set()

    def setMailer(self, mailer) -> None:
        super().setMailer(_FailureRecorder(mailer))

    def setQueuePath(self, path) -> None:
        super().setQueuePath(path)
        self.queue_path = str(path)

    def _process_one_file(self, filename) -> None:
        self.mailer.reset()
        super()._process_one_file(filename)
        if self.mailer.failed:
            head, tail = os.path.split(filename)
            self._unlink_if_exists(os.path.join(head, ".sending-" + tail))
        if self.mailer.outcome is not None:
            try:
                self._note_outcome(*self.mailer.outcome)
            except Exception:  # the log is a report: it never stops the sending
                logger.exception("Could not note the outcome of %s in the delivery log", filename)

    def _note_outcome(self, status: str, reply: str) -> None:
        if self.queue_path is None:
            return
        message_id, case = _message_headers(self.mailer.message)
        if status == "retrying":
            # Once per mail, not on every pass of an outage.
            if message_id in self._retrying:
                return
            self._retrying.add(message_id)
        else:
            self._retrying.discard(message_id)
        line = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "message_id": message_id,
            "case": case,
            "status": status,
            "reply": reply,
        }
        _append_outcome(self.queue_path, line)
        if status == "failed":
            logger.warning("Mail %s of case %s was refused: %s", message_id, case or "-", reply)


def _mailer_key(mailer) -> tuple:
    return (mailer.hostname, int(mailer.port), mailer.username, mailer.password)


def _stop_thread(key: str) -> None:
    thread = queue_threads.get(key)
    if thread is None:
        return
    thread.stop()
    thread.join(timeout=thread.interval + 15)
    with MailBase.lock:
        if queue_threads.get(key) is thread:
            del queue_threads[key]


def ensure_queue_processor(mailhost, *, restart: bool = False) -> RetryingQueueProcessor | None:
    """Make sure a :class:`RetryingQueueProcessor` works the MailHost's queue in this process.

    MailHost keeps one processor per queue directory in ``queue_threads`` and
    starts zope.sendmail's own on the first queued mail if none is there; this
    puts ours there first, and replaces one that runs with other SMTP settings
    (or is the stock one). With ``MAILHOST_QUEUE_ONLY`` set, mail is only
    queued and nothing is started.
    """
    if not mailhost.smtp_queue or os.environ.get("MAILHOST_QUEUE_ONLY"):
        return None
    key = mailhost._getThreadKey()
    mailer = mailhost._makeMailer()
    current = queue_threads.get(key)
    if (
        not restart
        and isinstance(current, RetryingQueueProcessor)
        and current.is_alive()
        and _mailer_key(current.mailer.mailer) == _mailer_key(mailer)
    ):
        return current
    if current is not None:
        _stop_thread(key)
    thread = RetryingQueueProcessor()
    thread.setMailer(mailer)
    thread.setQueuePath(mailhost.smtp_queue_directory)
    with MailBase.lock:
        raced = queue_threads.get(key)
        if isinstance(raced, RetryingQueueProcessor) and raced.is_alive():
            return raced
        thread.start()
        queue_threads[key] = thread
    logger.info("Mail queue processor for %s started", key)
    return thread


def stop_queue_processor(mailhost) -> None:
    """Stop the processor of the MailHost's queue; queued mail stays for the next one."""
    _stop_thread(mailhost._getThreadKey())


def delivery_outcomes(queue_directory: str | os.PathLike, *, since_offset: int = 0) -> tuple[list[dict], int]:
    """The outcomes the queue processors noted after byte ``since_offset`` of the delivery log.

    Only whole lines are read; a line being written is left for the next call.
    A log shorter than ``since_offset`` (rotated, truncated) is read from the start.

    :returns: the outcomes, oldest first, and the offset to pass next time.
    """
    path = Path(queue_directory, DELIVERY_LOG)
    try:
        with path.open("rb") as fh:
            if fh.seek(0, os.SEEK_END) < since_offset:
                since_offset = 0
            fh.seek(since_offset)
            data = fh.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    outcomes = []
    for raw in data[:end].splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            logger.warning("Skipping a malformed line in %s", path)
            continue
        if isinstance(line, dict) and line.get("message_id") and line.get("status"):
            outcomes.append(line)
    return outcomes, since_offset + end


_OUTCOME_EVENTS = {"delivered": "mail_delivered", "failed": "mail_failed"}


def _case_by_uid(catalog, uid: str):
    if not uid:
        return None
    for brain in catalog.unrestrictedSearchResults(UID=uid, portal_type="SigningCase"):
        return brain._unrestrictedGetObject()
    return None


def record_deliveries() -> int:
    """Copy the delivery log's new outcomes into the cases' audit trails; returns how many.

    ``mail_delivered`` or ``mail_failed`` (actor ``system``; the Message-ID, the
    recipient and kind of the ``mail_queued`` entry, the SMTP reply, when it
    happened). A mail this site's trails do not know (another site sharing the
    queue) is passed over. Idempotent: an outcome already in the trail is not
    recorded again, so two instances or two runs over the same lines record it
    once. How far the log was read is kept in a portal annotation; the caller
    commits.
    """
    from zope.annotation.interfaces import IAnnotations

    from esign.plone import audit

    mailhost = api.portal.get_tool("MailHost")
    directory = getattr(mailhost, "smtp_queue_directory", None)
    if not getattr(mailhost, "smtp_queue", False) or not directory:
        return 0
    directory = str(directory)
    annotations = IAnnotations(api.portal.get())
    stored = annotations.get(OFFSET_KEY)
    offset = stored[1] if stored and stored[0] == directory else 0
    outcomes, new_offset = delivery_outcomes(directory, since_offset=offset)

    catalog = api.portal.get_tool("portal_catalog")
    by_message: dict[str, object] | None = None  # for mails queued before X-ESign-Case existed
    count = 0
    for outcome in outcomes:
        event = _OUTCOME_EVENTS.get(outcome["status"])
        if event is None:
            continue
        message_id = outcome["message_id"]
        case = _case_by_uid(catalog, outcome.get("case") or "")
        if case is None and not outcome.get("case"):
            if by_message is None:
                by_message = {
                    entry.data.get("message_id"): found
                    for brain in catalog.unrestrictedSearchResults(portal_type="SigningCase")
                    for found in [brain._unrestrictedGetObject()]
                    for entry in audit.entries(found)
                    if entry.event == "mail_queued" and entry.data.get("message_id")
                }
            case = by_message.get(message_id)
        if case is None:
            continue
        trail = audit.entries(case)
        queued = next(
            (e for e in trail if e.event == "mail_queued" and e.data.get("message_id") == message_id), None
        )
        if queued is None:
            continue
        if any(e.event == event and e.data.get("message_id") == message_id for e in trail):
            continue
        audit.record(
            case,
            event,
            actor="system",
            message_id=message_id,
            recipient=queued.data.get("recipient", ""),
            kind=queued.data.get("kind", ""),
            reply=outcome.get("reply", ""),
            at=outcome.get("time", ""),
        )
        count += 1
    if (directory, new_offset) != (tuple(stored) if stored else None):
        annotations[OFFSET_KEY] = (directory, new_offset)
    if count:
        logger.info("Recorded %s mail outcome(s) in the audit trails", count)
    return count


def start_queue_processors(event) -> None:
    """At process start, configure every site with esign.plone and send what was left in its queue.

    Subscriber for ``zope.processlifetime.IDatabaseOpenedWithRoot``.
    """
    import transaction
    from zope.component.hooks import setSite

    connection = event.database.open()
    try:
        app = connection.root()["Application"]
        for site in app.objectValues("Plone Site"):
            setSite(site)
            try:
                if api.portal.get_registry_record("esign.internal.hash_salt", default=None) is None:
                    continue
                configure_mailhost()
                transaction.commit()
            except Exception:
                transaction.abort()
                logger.exception("Could not set up mail for site %s", site.getId())
            finally:
                setSite(None)
    finally:
        connection.close()


# -- messages ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Link:
    label: str
    url: str


@dataclass(frozen=True)
class _Quote:
    text: str


@dataclass(frozen=True)
class _Steps:
    items: tuple[str, ...]


_Block = str | _Link | _Quote | _Steps

_BUTTON = (
    "display:inline-block;padding:10px 18px;background:#00567a;color:#ffffff;"
    "text-decoration:none;border-radius:4px;font-weight:bold"
)

_QUOTE = "border-left:3px solid #ccc;margin:0;padding-left:12px"

TEXTS = {
    "sv": {
        "greeting": "Hej {name}!",
        "greeting_officer": "Hej!",
        "invitation_subject": "Du har en ny elektronisk underskrift att hantera",
        "invitation_intro": "Du har en ny elektronisk underskrift att hantera.",
        "case": "Ärende: {title}",
        "officer_message": "Meddelande från handläggaren:",
        "deadline": "Sista dag för underskrift: {deadline}",
        "handle": "Hantera ärendet",
        "bankid": "Om du använder Bank-id:",
        "bankid_steps": (
            "Klicka på länken ”Hantera ärendet” i mejlet.",
            "Välj ”Inloggning Medborgare”.",
            "Välj ”Mobilt BankID”.",
            "Välj din aktuella version av Bank-id.",
        ),
        "siths": "Om du har ett e-tjänstekort:",
        "siths_steps": (
            "Klicka på länken ”Hantera ärendet” i mejlet.",
            "Välj ”Inloggning Personal”.",
            "Välj ”eTjänstekort”.",
            "Logga in med din sexsiffriga kod.",
        ),
        "how_to_sign": (
            "För att visa och skriva under dokumentet klickar du på ”Visa och skriv under”. "
            "Det går även att välja ”Ta bort ärendet”. Det innebär att du väljer att inte skriva "
            "under dokumentet. Här kan du även ange anledning."
        ),
        "legal": (
            "Läs igenom hela dokumentet. Tänk på att en elektronisk underskrift har samma rättsliga "
            "status som en handskriven underskrift."
        ),
        "contact": (
            "Har du frågor om elektronisk underskrift kan du kontakta din avtalsansvariga "
            "eller handläggaren som skickade ärendet."
        ),
        "declined_subject": "{name} har valt att inte skriva under: {title}",
        "declined_intro": (
            "{name} ({email}) har valt ”Ta bort ärendet” och skriver inte under dokumentet i ärendet "
            "”{title}”. Ärendet är avböjt."
        ),
        "reason": "Anledning:",
        "no_reason": "Ingen anledning angavs.",
        "open_case": "Öppna ärendet",
        "completed_subject": "Alla parter har undertecknat dokumentet",
        "completed_intro": "Alla parter har undertecknat dokumentet i ärendet ”{title}”.",
        "download": "Ladda ned det undertecknade dokumentet",
        "keep": (
            "Observera att ett elektroniskt undertecknat dokument ska bevaras i digital form. "
            "Ändringar av en färdigställd undertecknad handling innebär att handlingen blir ogiltig."
        ),
        "copy_subject": "Digital kopia av det undertecknade dokumentet",
        "copy_intro": (
            "Handläggaren skickar dig en digital kopia av originalet av det undertecknade dokumentet "
            "i ärendet ”{title}”."
        ),
        "officer_completed_subject": "Ärendet är färdigt: {title}",
        "officer_completed_intro": (
            "Alla parter har undertecknat dokumentet i ärendet ”{title}”. Den undertecknade handlingen "
            "är låst och kan inte ändras."
        ),
        "footer": "Det här mejlet skickades automatiskt av {sender}. Det går inte att svara på det.",
    },
    "en": {
        "greeting": "Dear {name},",
        "greeting_officer": "Hello,",
        "invitation_subject": "You have a new electronic signature to handle",
        "invitation_intro": "You have a new electronic signature to handle.",
        "case": "Case: {title}",
        "officer_message": "Message from the case officer:",
        "deadline": "Last day to sign: {deadline}",
        "handle": "Handle the case",
        "bankid": "If you use BankID:",
        "bankid_steps": (
            "Click the link “Handle the case” in this email.",
            "Choose “Citizen login”.",
            "Choose “Mobile BankID”.",
            "Choose your current version of BankID.",
        ),
        "siths": "If you have a staff e-service card (eTjänstekort):",
        "siths_steps": (
            "Click the link “Handle the case” in this email.",
            "Choose “Staff login”.",
            "Choose “eTjänstekort”.",
            "Log in with your six-digit code.",
        ),
        "how_to_sign": (
            "To view and sign the document, click “View and sign”. You can also choose "
            "“Remove the case”, which means that you choose not to sign the document; you can give "
            "a reason there."
        ),
        "legal": (
            "Read the whole document. Keep in mind that an electronic signature has the same legal "
            "standing as a handwritten signature."
        ),
        "contact": (
            "If you have questions about electronic signatures, contact the person responsible for "
            "your agreement or the case officer who sent the case."
        ),
        "declined_subject": "{name} has chosen not to sign: {title}",
        "declined_intro": (
            "{name} ({email}) chose “Remove the case” and will not sign the document in the case "
            "“{title}”. The case is declined."
        ),
        "reason": "Reason:",
        "no_reason": "No reason was given.",
        "open_case": "Open the case",
        "completed_subject": "All parties have signed the document",
        "completed_intro": "All parties have signed the document in the case “{title}”.",
        "download": "Download the signed document",
        "keep": (
            "Please note that an electronically signed document must be kept in digital form. "
            "Any change to a completed signed document makes it invalid."
        ),
        "copy_subject": "Digital copy of the signed document",
        "copy_intro": (
            "The case officer sends you a digital copy of the original of the signed document in the "
            "case “{title}”."
        ),
        "officer_completed_subject": "The case is complete: {title}",
        "officer_completed_intro": (
            "All parties have signed the document in the case “{title}”. The signed document is "
            "locked and cannot be changed."
        ),
        "footer": "This email was sent automatically by {sender}. Replies are not read.",
    },
}


def _language() -> str:
    language = api.portal.get_registry_record("plone.default_language", default=None)
    if not language:
        language = api.portal.get().Language() or "sv"
    return "en" if str(language).lower().startswith("en") else "sv"


def _format_date(value: dt.date, language: str) -> str:
    if language == "en":
        return f"{value.day} {value:%B} {value.year}"
    return value.isoformat()


def _sender() -> tuple[str, str]:
    schema = _mail_schema()
    address = schema.email_from_address
    if not address:
        logger.warning("The site has no email_from_address; mail goes out as noreply@localhost")
        address = "noreply@localhost"
    return (schema.email_from_name or api.portal.get().Title() or "E-underskrift", address)


def _address(name: str, email: str) -> Address:
    return Address(display_name=name or "", addr_spec=email)


def _plain(blocks: Sequence[_Block]) -> str:
    out = []
    for block in blocks:
        if isinstance(block, _Link):
            out.append(f"{block.label}:\n{block.url}")
        elif isinstance(block, _Quote):
            out.append("\n".join(f"> {line}" for line in block.text.splitlines() or [""]))
        elif isinstance(block, _Steps):
            out.append("\n".join(f"{n}. {item}" for n, item in enumerate(block.items, start=1)))
        else:
            out.append(block)
    return "\n\n".join(out) + "\n"


def _html(blocks: Sequence[_Block], *, language: str, title: str) -> str:
    out = []
    for block in blocks:
        if isinstance(block, _Link):
            url = html.escape(block.url, quote=True)
            out.append(f'<p><a href="{url}" style="{_BUTTON}">{html.escape(block.label)}</a></p>')
        elif isinstance(block, _Quote):
            text = "<br>".join(html.escape(line) for line in block.text.splitlines())
            out.append(f'<blockquote style="{_QUOTE}">{text}</blockquote>')
        elif isinstance(block, _Steps):
            out.append("<ol>" + "".join(f"<li>{html.escape(item)}</li>" for item in block.items) + "</ol>")
        else:
            out.append(f"<p>{html.escape(block)}</p>")
    return (
        f'<!DOCTYPE html><html lang="{language}"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:15px;line-height:1.5;color:#222">'
        + "".join(out)
        + "</body></html>"
    )


def _check_url(url: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise ESignError("A link in a mail must be an absolute http(s) URL.")
    return url


def _send(case, *, to: tuple[str, str], subject: str, blocks: list[_Block], language: str) -> str:
    sender_name, sender_address = _sender()
    blocks = [*blocks, TEXTS[language]["footer"].format(sender=sender_name)]
    # CRLF line ends: MailHost queues the bytes as they are, smtplib sends bytes without
    # fixing line ends, and a server reading bare LFs refuses the mail (500, "line too long").
    message = EmailMessage(policy=email.policy.SMTP)
    message["Subject"] = subject
    message["From"] = _address(sender_name, sender_address)
    message["To"] = _address(*to)
    message["Date"] = formatdate(localtime=True)
    message_id = make_msgid(domain=sender_address.rpartition("@")[2] or None)
    message["Message-ID"] = message_id
    # Out-of-office replies and the like must not answer a machine (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    # Which case the mail is about, for the delivery log (a UID: no one's identity).
    message[CASE_HEADER] = case.UID()
    message.set_content(_plain(blocks), cte="quoted-printable")
    message.add_alternative(
        _html(blocks, language=language, title=subject), subtype="html", cte="quoted-printable"
    )
    # After the parts: making the message multipart moves Content-* headers into the first part.
    message["Content-Language"] = language

    mailhost = api.portal.get_tool("MailHost")
    ensure_queue_processor(mailhost)
    mailhost.send(message, immediate=False)
    return message_id


def send_invitation(case, record, *, link: str) -> str:
    """Tell a signer there is a document to sign ("Du har en ny elektronisk underskrift att hantera").

    :param record: the signer's :class:`~esign.plone.content.signing_case.SignerRecord`.
    :param link: the absolute URL behind "Hantera ärendet".
    :returns: the mail's Message-ID.
    """
    language = _language()
    t = TEXTS[language]
    blocks: list[_Block] = [
        t["greeting"].format(name=record.name),
        t["invitation_intro"],
        t["case"].format(title=case.Title()),
    ]
    if (getattr(case, "message", None) or "").strip():
        blocks += [t["officer_message"], _Quote(case.message.strip())]
    if getattr(case, "deadline", None):
        blocks.append(t["deadline"].format(deadline=_format_date(case.deadline, language)))
    blocks += [
        _Link(t["handle"], _check_url(link)),
        t["bankid"],
        _Steps(t["bankid_steps"]),
        t["siths"],
        _Steps(t["siths_steps"]),
        t["how_to_sign"],
        t["legal"],
        t["contact"],
    ]
    message_id = _send(
        case,
        to=(record.name, record.email),
        subject=t["invitation_subject"],
        blocks=blocks,
        language=language,
    )
    logger.info("Invitation for case %s queued for signer %s", case.UID(), record.position)
    return message_id


def send_declined(case, record, *, officer_email: str, case_url: str) -> str:
    """Tell the officer that a signer chose "Ta bort ärendet", with the signer's reason."""
    language = _language()
    t = TEXTS[language]
    reason = (getattr(record, "decline_reason", "") or "").strip()
    blocks: list[_Block] = [
        t["greeting_officer"],
        t["declined_intro"].format(name=record.name, email=record.email, title=case.Title()),
        t["reason"],
        _Quote(reason) if reason else t["no_reason"],
        _Link(t["open_case"], _check_url(case_url)),
    ]
    subject = t["declined_subject"].format(name=record.name, title=case.Title())
    message_id = _send(case, to=("", officer_email), subject=subject, blocks=blocks, language=language)
    logger.info("Decline notice for case %s queued (signer %s)", case.UID(), record.position)
    return message_id


def send_completed(case, *, recipients: list[tuple[str, str]], download_url: str) -> list[str]:
    """Tell every party, one mail each, that all have signed, with the download link.

    :param recipients: ``(name, email)`` of each party.
    :returns: the Message-IDs, in the order of ``recipients``.
    """
    language = _language()
    t = TEXTS[language]
    url = _check_url(download_url)
    ids = []
    for name, address in recipients:
        blocks: list[_Block] = [
            t["greeting"].format(name=name) if name else t["greeting_officer"],
            t["completed_intro"].format(title=case.Title()),
            _Link(t["download"], url),
            t["keep"],
        ]
        subject = t["completed_subject"]
        ids.append(_send(case, to=(name, address), subject=subject, blocks=blocks, language=language))
    logger.info("Completion notice for case %s queued for %s parties", case.UID(), len(ids))
    return ids


def send_copy(case, *, recipient: tuple[str, str], download_url: str) -> str:
    """The officer sends a party a digital copy of the signed original."""
    language = _language()
    t = TEXTS[language]
    name, _email = recipient
    blocks: list[_Block] = [
        t["greeting"].format(name=name) if name else t["greeting_officer"],
        t["copy_intro"].format(title=case.Title()),
        _Link(t["download"], _check_url(download_url)),
        t["keep"],
    ]
    message_id = _send(case, to=recipient, subject=t["copy_subject"], blocks=blocks, language=language)
    logger.info("Copy of case %s queued", case.UID())
    return message_id


def send_officer_completed(case, *, officer_email: str, case_url: str) -> str:
    """Tell the officer that every party has signed and the case is complete."""
    language = _language()
    t = TEXTS[language]
    blocks: list[_Block] = [
        t["greeting_officer"],
        t["officer_completed_intro"].format(title=case.Title()),
        _Link(t["open_case"], _check_url(case_url)),
    ]
    subject = t["officer_completed_subject"].format(title=case.Title())
    message_id = _send(case, to=("", officer_email), subject=subject, blocks=blocks, language=language)
    logger.info("Completion notice for case %s queued for the officer", case.UID())
    return message_id


# -- lifecycle: reminders, expiry, withdrawal ------------------------------------

__all__ += ["send_expired", "send_reminder", "send_withdrawn"]

TEXTS["sv"].update(
    {
        "reminder_subject": "Påminnelse: du har en elektronisk underskrift att hantera",
        "reminder_intro": (
            "Det här är en påminnelse. Du har en elektronisk underskrift som väntar på dig och som du "
            "ännu inte har hanterat."
        ),
        "expired_subject": "Ärendet har gått ut: {title}",
        "expired_intro": (
            "Sista dag för underskrift i ärendet ”{title}” ({deadline}) har passerat innan alla "
            "parter hade skrivit under. Ärendet har gått ut och länkarna till undertecknarna fungerar "
            "inte längre."
        ),
        "expired_missing": "Har inte skrivit under:",
        "withdrawn_subject": "Ärendet har dragits tillbaka: {title}",
        "withdrawn_intro": (
            "Handläggaren har dragit tillbaka ärendet ”{title}”. Du behöver inte göra något, och "
            "länken i det tidigare mejlet fungerar inte längre."
        ),
    }
)
TEXTS["en"].update(
    {
        "reminder_subject": "Reminder: you have an electronic signature to handle",
        "reminder_intro": (
            "This is a reminder. An electronic signature is waiting for you and you have not handled it yet."
        ),
        "expired_subject": "The case has expired: {title}",
        "expired_intro": (
            "The last day to sign in the case “{title}” ({deadline}) has passed before every party "
            "had signed. The case has expired and the signers' links no longer work."
        ),
        "expired_missing": "Has not signed:",
        "withdrawn_subject": "The case has been withdrawn: {title}",
        "withdrawn_intro": (
            "The case officer has withdrawn the case “{title}”. You do not need to do anything, and "
            "the link in the earlier email no longer works."
        ),
    }
)


def send_reminder(case, record, *, link: str) -> str:
    """Remind a signer who has not yet signed, with a fresh "Hantera ärendet" link.

    :param record: the signer's :class:`~esign.plone.content.signing_case.SignerRecord`.
    :param link: the absolute URL behind "Hantera ärendet".
    :returns: the mail's Message-ID.
    """
    language = _language()
    t = TEXTS[language]
    blocks: list[_Block] = [
        t["greeting"].format(name=record.name),
        t["reminder_intro"],
        t["case"].format(title=case.Title()),
    ]
    if getattr(case, "deadline", None):
        blocks.append(t["deadline"].format(deadline=_format_date(case.deadline, language)))
    blocks += [
        _Link(t["handle"], _check_url(link)),
        t["bankid"],
        _Steps(t["bankid_steps"]),
        t["siths"],
        _Steps(t["siths_steps"]),
        t["legal"],
        t["contact"],
    ]
    message_id = _send(
        case, to=(record.name, record.email), subject=t["reminder_subject"], blocks=blocks, language=language
    )
    logger.info("Reminder for case %s queued for signer %s", case.UID(), record.position)
    return message_id


def send_expired(case, *, officer_email: str, case_url: str) -> str:
    """Tell the officer that the deadline passed before everyone signed, and who is missing."""
    language = _language()
    t = TEXTS[language]
    deadline = _format_date(case.deadline, language) if getattr(case, "deadline", None) else ""
    missing = [r.name for r in case.signer_records or () if r.status != "signed"]
    blocks: list[_Block] = [
        t["greeting_officer"],
        t["expired_intro"].format(title=case.Title(), deadline=deadline),
    ]
    if missing:
        blocks += [t["expired_missing"], _Steps(tuple(missing))]
    blocks.append(_Link(t["open_case"], _check_url(case_url)))
    subject = t["expired_subject"].format(title=case.Title())
    message_id = _send(case, to=("", officer_email), subject=subject, blocks=blocks, language=language)
    logger.info("Expiry notice for case %s queued for the officer", case.UID())
    return message_id


def send_withdrawn(case, record) -> str:
    """Tell an invited signer that the officer withdrew the case and the link is dead."""
    language = _language()
    t = TEXTS[language]
    blocks: list[_Block] = [
        t["greeting"].format(name=record.name),
        t["withdrawn_intro"].format(title=case.Title()),
        t["contact"],
    ]
    subject = t["withdrawn_subject"].format(title=case.Title())
    message_id = _send(
        case, to=(record.name, record.email), subject=subject, blocks=blocks, language=language
    )
    logger.info("Withdrawal notice for case %s queued for signer %s", case.UID(), record.position)
    return message_id
