"""Site-wide stores in the ZODB: link tokens, signer sessions, login flows.

Kept in the database, never in process memory, so that several Zope instances
can serve one site (a BankID order started on one instance is collected on
another). Keys are SHA-256 hashes of the secrets that browsers hold, so a copy
of the database does not hand out working links or sessions.
"""

from __future__ import annotations

import hashlib
import time

from BTrees.OOBTree import OOBTree
from persistent.mapping import PersistentMapping
from plone import api
from zope.annotation.interfaces import IAnnotations

KEY = "esign.plone.stores"

#: A key every store keeps and nobody deletes. A BTree resolves two transactions' concurrent
#: changes to one bucket only if neither empties the bucket or removes its first key; the
#: login flows and sessions (an entry per running BankID order, deleted at its end) do both
#: all the time. "" sorts before every digest, so the first key of the first bucket stays put.
ANCHOR = ""


def _stores() -> PersistentMapping:
    portal = api.portal.get()
    annotations = IAnnotations(portal)
    stores = annotations.get(KEY)
    if stores is None:
        stores = annotations[KEY] = PersistentMapping()
    return stores


def store(name: str) -> OOBTree:
    stores = _stores()
    tree = stores.get(name)
    if tree is None:
        tree = stores[name] = OOBTree()
        tree[ANCHOR] = PersistentMapping()
    return tree


def _anchored(tree: OOBTree) -> OOBTree:
    # Stores made before the anchor existed get it with their next write.
    if ANCHOR not in tree:
        tree[ANCHOR] = PersistentMapping()
    return tree


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def put(name: str, secret: str, value: dict) -> None:
    _anchored(store(name))[digest(secret)] = PersistentMapping(value)


def get(name: str, secret: str | None, *, now: float | None = None) -> PersistentMapping | None:
    """The entry for ``secret`` if it exists and has not expired (``expires`` epoch seconds)."""
    if not secret or len(secret) > 200:
        return None
    entry = store(name).get(digest(secret))
    if entry is None:
        return None
    expires = entry.get("expires")
    if expires is not None and expires < (now or time.time()):
        return None
    return entry


def delete(name: str, secret: str) -> None:
    store(name).pop(digest(secret), None)


def delete_where(name: str, predicate) -> int:
    tree = store(name)
    doomed = [k for k, v in tree.items() if k != ANCHOR and predicate(v)]
    for k in doomed:
        del tree[k]
    return len(doomed)


def purge_expired(name: str, *, now: float | None = None, limit: int = 200) -> int:
    """Drop up to ``limit`` expired entries; called now and then by writers."""
    now = now or time.time()
    tree = store(name)
    doomed = []
    for key, value in tree.items():
        if key != ANCHOR and value.get("expires") is not None and value["expires"] < now:
            doomed.append(key)
            if len(doomed) >= limit:
                break
    for key in doomed:
        del tree[key]
    return len(doomed)
