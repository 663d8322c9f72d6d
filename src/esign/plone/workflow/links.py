"""The "Hantera ärendet" links: one unguessable token per signer and case.

A token carries 192 random bits, is stored only as a SHA-256 hash, lives until
the case's deadline (or the configured number of days) and dies when the case is
withdrawn. It identifies the case and the signer entry and nothing more: the
signer must still log in before seeing anything.
"""

from __future__ import annotations

import datetime as dt
import secrets
from zoneinfo import ZoneInfo

from plone import api

from esign.plone import storage
from esign.plone.errors import NotFound

STORE = "links"
SWEDEN = ZoneInfo("Europe/Stockholm")


def _expiry(case) -> float:
    deadline = getattr(case, "deadline", None)
    if deadline:
        end = dt.datetime.combine(deadline, dt.time(23, 59, 59), tzinfo=SWEDEN)
        return end.timestamp()
    days = api.portal.get_registry_record("esign.link_validity_days", default=30) or 30
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).timestamp()


def issue_link(case, record) -> str:
    """A fresh token for ``record``; the raw token exists only in the mail that carries it."""
    token = secrets.token_urlsafe(24)
    storage.put(STORE, token, {"case": case.UID(), "signer": record.signer_id, "expires": _expiry(case)})
    return token


def link_url(token: str) -> str:
    return f"{api.portal.get().absolute_url()}/@@esign-link?t={token}"


def resolve_link(token: str | None) -> tuple[str, str]:
    """``(case UID, signer id)`` for a live token.

    :raises NotFound: the link is unknown, expired or withdrawn.
    """
    entry = storage.get(STORE, token)
    if entry is None:
        raise NotFound(
            "Länken är ogiltig eller har gått ut. Kontakta handläggaren om du fortfarande ska skriva under."
        )
    return entry["case"], entry["signer"]


def revoke_links(case) -> int:
    uid = case.UID()
    return storage.delete_where(STORE, lambda entry: entry.get("case") == uid)
