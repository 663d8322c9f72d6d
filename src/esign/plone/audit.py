"""The audit trail: an append-only, hash-chained event log per signing case.

Every entry's hash is SHA-256 over the canonical JSON of its sequence number,
time, event, actor, data and the previous entry's hash, so changing, removing
or reordering an entry breaks the chain. The count and head hash are also kept
on the case itself, which catches a tail cut off the list.

Entries hold no personnummer and no HSA-id: signers are named by their position
on the case (``signer:2``), officers by their Plone user id (``user:anna``).

    >>> audit.record(case, "reminded", actor="user:anna", signers=[2])
    >>> audit.verify(case).ok
    True
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
from typing import Any

from persistent.list import PersistentList
from zope.annotation.interfaces import IAnnotations

ANNOTATION_KEY = "esign.plone.audit"
HEAD_ATTRIBUTE = "esign_audit_head"
GENESIS = "0" * 64

EVENTS = (
    "created",
    "sent",
    "mail_queued",
    "mail_delivered",
    "mail_failed",
    "link_opened",
    "login",
    "document_viewed",
    "sign_started",
    "signed",
    "declined",
    "reminded",
    "withdrawn",
    "expired",
    "completed",
    "downloaded",
    "email_corrected",
    "archive_timestamped",
    "archive_timestamp_renewed",
)

#: The officer's words for each event.
LABELS = {
    "created": "Ärendet skapades",
    "sent": "Skickat för underskrift",
    "mail_queued": "E-post lämnad för utskick",
    "mail_delivered": "E-post levererad",
    "mail_failed": "E-post kunde inte levereras",
    "link_opened": "Länk öppnad",
    "login": "Inloggning",
    "document_viewed": "Dokumentet visat",
    "sign_started": "Underskrift påbörjad",
    "signed": "Undertecknat",
    "declined": "Avböjt",
    "reminded": "Påminnelse skickad",
    "withdrawn": "Återkallat",
    "expired": "Tiden gick ut",
    "completed": "Alla har undertecknat",
    "downloaded": "Dokumentet hämtat",
    "email_corrected": "E-postadress rättad",
    "archive_timestamped": "Arkivtidsstämpel tillagd (PAdES B-LTA)",
    "archive_timestamp_renewed": "Arkivtidsstämpel förnyad",
}

#: Keys that would carry an identity number; a caller passing one is a bug.
FORBIDDEN_KEYS = frozenset({"personal_number", "personnummer", "pnr", "hsa_id", "ssn"})

# A personnummer, 10 or 12 digits with an optional separator, not part of a longer token.
_PERSONAL_NUMBER = re.compile(r"(?<![0-9A-Za-z])((?:19|20)?\d{6})[-+]?(\d{4})(?![0-9A-Za-z])")


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    """One event in a case's history, as stored."""

    #: 1 for the first entry, then one more for each.
    seq: int
    #: When, ISO 8601 in UTC.
    time: str
    #: One of :data:`EVENTS`.
    event: str
    #: ``"user:<userid>"``, ``"signer:<position>"`` or ``"system"``.
    actor: str
    #: Event details (JSON values only).
    data: dict
    #: The previous entry's hash; 64 zeros for the first.
    prev_hash: str
    #: SHA-256 (hex) over the canonical JSON of all fields above.
    hash: str

    @property
    def label(self) -> str:
        return LABELS.get(self.event, self.event)

    @property
    def timestamp(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.time)


@dataclasses.dataclass(frozen=True)
class AuditVerification:
    """What :func:`verify` found."""

    #: True when every hash, link, sequence number and the case's anchor agree.
    ok: bool
    #: One Swedish sentence per problem found; empty when ``ok``.
    problems: tuple[str, ...]
    #: Hash of the last stored entry (64 zeros when there is none).
    head: str
    #: Number of stored entries.
    count: int


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(*, seq: int, time: str, event: str, actor: str, data: dict, prev_hash: str) -> str:
    payload = {"seq": seq, "time": time, "event": event, "actor": actor, "data": data, "prev_hash": prev_hash}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(digits):
        number = int(char) * (2 if index % 2 == 0 else 1)
        total += number - 9 if number > 9 else number
    return total % 10 == 0


def _redact(text: str) -> str:
    # Free text (a decline reason) may carry a personnummer someone typed; the log keeps none.
    def replace(match: re.Match) -> str:
        digits = (match.group(1) + match.group(2))[-10:]
        return "[personnummer]" if _luhn_ok(digits) else match.group(0)

    return _PERSONAL_NUMBER.sub(replace, text)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            if str(key).lower() in FORBIDDEN_KEYS:
                raise ValueError(f"Audit data must not carry identity numbers ({key!r}).")
            cleaned[str(key)] = _clean(item)
        return cleaned
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(item) for item in value]
    return _redact(str(value))


def _storage(case, *, create: bool = False) -> PersistentList | None:
    annotations = IAnnotations(case)
    log = annotations.get(ANNOTATION_KEY)
    if log is None and create:
        log = annotations[ANNOTATION_KEY] = PersistentList()
    return log


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def record(case, event: str, *, actor: str, **data) -> AuditEntry:
    """Append an event to the case's audit trail.

    :param case: the signing case.
    :param event: one of :data:`EVENTS`.
    :param actor: ``"user:<userid>"``, ``"signer:<position>"`` or ``"system"``
        (see :func:`actor_for_signer`, :func:`current_actor`).
    :param data: details as JSON values; never a personnummer or HSA-id.
    :returns: the stored entry.
    :raises ValueError: for an unknown event, an empty actor or an identity-number key.

    Example: ``audit.record(case, "reminded", actor="user:anna", signers=[2])``
    """
    if event not in EVENTS:
        raise ValueError(f"Unknown audit event {event!r}.")
    if not isinstance(actor, str) or not actor:
        raise ValueError("An audit entry needs an actor.")
    cleaned = _clean(data)
    log = _storage(case, create=True)
    prev_hash = log[-1]["hash"] if log else GENESIS
    fields = {
        "seq": len(log) + 1,
        "time": _now(),
        "event": event,
        "actor": actor,
        "data": cleaned,
        "prev_hash": prev_hash,
    }
    stored = dict(fields, hash=entry_hash(**fields))
    log.append(stored)
    setattr(case, HEAD_ATTRIBUTE, (stored["seq"], stored["hash"]))
    return _entry(stored)


def _entry(stored: dict) -> AuditEntry:
    return AuditEntry(
        seq=stored.get("seq"),
        time=stored.get("time"),
        event=stored.get("event"),
        actor=stored.get("actor"),
        data=dict(stored.get("data") or {}),
        prev_hash=stored.get("prev_hash"),
        hash=stored.get("hash"),
    )


def entries(case) -> list[AuditEntry]:
    """The case's audit trail, oldest first."""
    return [_entry(stored) for stored in _storage(case) or ()]


def verify(case) -> AuditVerification:
    """Recompute every hash and link of the case's audit trail.

    Detects an edited entry (its hash no longer matches), a removed or reordered
    entry (sequence numbers and links break) and a cut-off tail (the count and
    head hash kept on the case differ).
    """
    problems: list[str] = []
    prev_hash = GENESIS
    log = list(_storage(case) or ())
    for index, stored in enumerate(log, start=1):
        seq = stored.get("seq")
        if seq != index:
            problems.append(f"post {index} har löpnummer {seq}: en post saknas eller har flyttats")
        if stored.get("prev_hash") != prev_hash:
            problems.append(f"post {index} pekar inte på föregående post")
        try:
            expected = entry_hash(
                seq=seq,
                time=stored["time"],
                event=stored["event"],
                actor=stored["actor"],
                data=stored["data"],
                prev_hash=stored["prev_hash"],
            )
        except (KeyError, TypeError, ValueError):
            expected = None
        if expected is None or stored.get("hash") != expected:
            problems.append(f"post {index} har ändrats efter att den skrevs")
        prev_hash = stored.get("hash") or ""
    head = log[-1].get("hash", "") if log else GENESIS
    anchor = getattr(case, HEAD_ATTRIBUTE, None)
    if anchor is None:
        if log:
            problems.append("ärendet saknar kontrollsumma för loggen")
    else:
        count, anchored_head = anchor
        if count != len(log):
            problems.append(f"loggen har {len(log)} poster men ska ha {count}")
        elif anchored_head != head:
            problems.append("sista posten stämmer inte med ärendets kontrollsumma")
    return AuditVerification(ok=not problems, problems=tuple(problems), head=head, count=len(log))


def reset(case) -> None:
    """Start an empty trail: only for a *new* object that arrived with a copied one."""
    annotations = IAnnotations(case)
    if ANNOTATION_KEY in annotations:
        del annotations[ANNOTATION_KEY]
    if HEAD_ATTRIBUTE in getattr(case, "__dict__", {}):
        delattr(case, HEAD_ATTRIBUTE)


def authentication_details(identity, *, record=None) -> dict:
    """Method, identity provider, level of assurance and transaction ref of a fresh authentication.

    The transaction ref is left out when it would name the person (an OIDC
    provider without ``sid``/``jti`` falls back to the subject, which may be a
    personnummer or HSA-id).
    """
    ctx = identity.context
    names = {
        str(value).upper()
        for value in (
            identity.personal_number,
            identity.hsa_id,
            getattr(record, "personal_number", None),
            getattr(record, "hsa_id", None),
        )
        if value
    }
    ref = ctx.transaction_ref or ""
    return {
        "method": ctx.method,
        "identity_provider": ctx.identity_provider,
        "level_of_assurance": ctx.level_of_assurance,
        "transaction_ref": "" if ref.upper() in names else ref,
    }


def actor_for_signer(record) -> str:
    """``"signer:<position>"`` for a :class:`SignerRecord`."""
    return f"signer:{record.position}"


def actor_for_user(userid: str | None) -> str:
    return f"user:{userid}" if userid else "system"


def current_actor() -> str:
    """``"user:<userid>"`` for the logged-in Plone user, else ``"system"``.

    Signers are not Plone users; name them with :func:`actor_for_signer`.
    """
    from plone import api

    if api.user.is_anonymous():
        return "system"
    return actor_for_user(api.user.get_current().getId())
