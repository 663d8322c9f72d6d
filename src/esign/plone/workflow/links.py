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
from zope.annotation.interfaces import IAnnotations

from esign.plone import storage
from esign.plone.errors import NotFound

STORE = "links"
#: On the case: the hashes of the tokens issued for it, so that withdrawing them touches
#: those entries only (not every live link of the site, which conflicts with every other
#: case completing at the same moment and grows with the site).
CASE_KEY = "esign.plone.links"
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
    annotations = IAnnotations(case)
    annotations[CASE_KEY] = (*annotations.get(CASE_KEY, ()), storage.digest(token))
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
    """Withdraw every link of ``case``; returns how many were still live."""
    annotations = IAnnotations(case)
    issued = annotations.get(CASE_KEY)
    if issued is None:
        # A case sent before the hashes were kept on it: look through the store.
        uid = case.UID()
        return storage.delete_where(STORE, lambda entry: entry.get("case") == uid)
    if not issued:
        return 0
    tree, uid, revoked = storage.store(STORE), case.UID(), 0
    for key in issued:
        entry = tree.get(key)
        if entry is not None and entry.get("case") == uid:  # a copied case carries the list too
            del tree[key]
            revoked += 1
    annotations[CASE_KEY] = ()
    return revoked
