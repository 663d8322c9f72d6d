"""The officer's view of a case's audit trail ("Händelselogg") and its verification."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from Products.Five.browser import BrowserView

from esign.plone import audit

STOCKHOLM = ZoneInfo("Europe/Stockholm")

#: How the details' keys read to the officer.
DETAIL_LABELS = {
    "recipient": "mottagare",
    "kind": "slag",
    "message_id": "Message-ID",
    "method": "metod",
    "identity_provider": "identitetsutfärdare",
    "level_of_assurance": "tillitsnivå",
    "transaction_ref": "transaktion",
    "order_ref": "orderRef",
    "certificate_serial": "certifikatets serienummer",
    "field_name": "signaturfält",
    "document_sha256": "dokumentets SHA-256",
    "reason": "anledning",
    "signers": "undertecknare",
    "signatures": "underskrifter",
    "signing_order": "ordning",
    "uid": "ärende-id",
    "signer": "undertecknare",
    "pending": "väntande undertecknare",
    "deadline": "sista dag",
    "old_email": "tidigare e-post",
    "new_email": "ny e-post",
}

#: What each kind of mail is called.
MAIL_KINDS = {
    "invitation": "inbjudan",
    "reminder": "påminnelse",
    "completed": "alla har undertecknat",
    "declined": "avböjt",
    "copy": "digital kopia",
    "expired": "tiden gick ut",
    "withdrawn": "återkallat",
}

_ACTOR_KEYS = frozenset({"recipient", "signer", "pending"})

ACTOR_WORDS = {"officer": "handläggaren", "system": "systemet"}


def actor_label(actor: str) -> str:
    kind, _, rest = actor.partition(":")
    if kind == "signer":
        return f"undertecknare {rest}"
    if kind == "user":
        return f"användare {rest}"
    return ACTOR_WORDS.get(actor, actor)


def local_time(iso: str) -> str:
    try:
        return dt.datetime.fromisoformat(iso).astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return str(iso)


def _value(key: str, value) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_value(key, v) for v in value)
    if key in _ACTOR_KEYS and isinstance(value, str):
        return actor_label(value)
    if key == "kind":
        return MAIL_KINDS.get(value, str(value))
    return str(value)


class AuditView(BrowserView):
    """``@@esign-audit``: every event on the case, oldest first, and whether the chain holds."""

    def __call__(self):
        self.request.response.setHeader("Cache-Control", "private, no-store")
        self.verification = audit.verify(self.context)
        return self.index()

    def rows(self) -> list[dict]:
        return [
            {
                "seq": entry.seq,
                "time": local_time(entry.time),
                "event": entry.event,
                "label": entry.label,
                "actor": actor_label(entry.actor),
                "details": [
                    {"label": DETAIL_LABELS.get(key, key), "value": _value(key, value)}
                    for key, value in sorted(entry.data.items())
                    if value not in ("", None)
                ],
                "hash": entry.hash,
            }
            for entry in audit.entries(self.context)
        ]

    def verdict(self) -> str:
        if self.verification.ok:
            return "Kedjan är obruten"
        return "Kedjan är bruten: " + "; ".join(self.verification.problems)
