"""What "Mina ärenden" reads from the catalog, so that listing cases never loads them.

Each column is a small value computed when the case is (re)indexed: sending,
signing, declining, expiring and withdrawing all reindex the case, and a
reindex of some indexes still refreshes every metadata column. The state comes
from the standard ``review_state`` column (an expired case has its own state),
the title, address and modification time from Plone's own columns.

Signers appear by name only: the catalog holds no personnummer or HSA-id.
"""

from __future__ import annotations

import datetime as dt

import transaction
from plone import api
from plone.indexer import indexer

from esign.plone import logger
from esign.plone.content.signing_case import PENDING, SIGNED
from esign.plone.interfaces import ISigningCase
from esign.plone.workflow import cases

__all__ = [
    "COLUMNS",
    "case_number",
    "deadline",
    "fill_listing_metadata",
    "signed_count",
    "signer_count",
    "waiting_for",
]

#: The metadata columns this module provides (also in profiles/default/catalog.xml).
COLUMNS = (
    "esign_case_number",
    "esign_deadline",
    "esign_signed_count",
    "esign_signer_count",
    "esign_waiting_for",
)

#: Cases refreshed between savepoints by :func:`fill_listing_metadata`, to bound memory.
_CHUNK = 500


@indexer(ISigningCase)
def case_number(case) -> str:
    """Diarienummer, or ""."""
    return getattr(case, "case_number", None) or ""


@indexer(ISigningCase)
def deadline(case) -> dt.date | None:
    """Last day to sign, or ``None``."""
    return getattr(case, "deadline", None)


@indexer(ISigningCase)
def signed_count(case) -> int:
    """Signatures made so far (none while the case is a draft)."""
    return sum(1 for r in case.signer_records or () if r.status == SIGNED)


@indexer(ISigningCase)
def signer_count(case) -> int:
    """Signers in all: the frozen records once sent, the draft's list before."""
    records = case.signer_records
    return len(records) if records is not None else len(case.signers or ())


@indexer(ISigningCase)
def waiting_for(case) -> tuple[str, ...]:
    """Names of the signers who have not answered, while the case awaits signatures."""
    # default: a case being copied or imported may be indexed before it has a workflow state.
    if case.signer_records is None or api.content.get_state(obj=case, default=None) != cases.AWAITING:
        return ()
    return tuple(r.name for r in case.signer_records if r.status == PENDING)


def fill_listing_metadata(context=None) -> int:
    """Upgrade 1004: compute the listing columns of every existing case.

    Only the metadata is rewritten (and the cheap ``getId`` index, since the
    catalog updates metadata only along with some index); the cases' modification
    dates stay as they were.

    :returns: how many cases were refreshed.
    """
    catalog = api.portal.get_tool("portal_catalog")
    brains = catalog.unrestrictedSearchResults(portal_type="SigningCase")
    count = 0
    for count, brain in enumerate(brains, start=1):
        case = brain._unrestrictedGetObject()
        catalog.catalog_object(case, brain.getPath(), idxs=["getId"], update_metadata=1)
        if count % _CHUNK == 0:
            transaction.savepoint(optimistic=True)
            catalog._p_jar.cacheGC()
            logger.info("Listing metadata of %s signing cases refreshed", count)
    logger.info("Listing metadata refreshed for %s signing cases", count)
    return count
