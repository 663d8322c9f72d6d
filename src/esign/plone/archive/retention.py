"""Retention: a signed case is kept for the configured number of years after its last signature.

Public records must be preserved for as long as the organisation's document
management plan says (arkivlagen, informationshanteringsplanen); deleting a
signed agreement early destroys the evidence the signatures were made for.

Two guards work together. The non-stealable "signed" lock makes Zope refuse to
delete, rename or move the case itself; it does not protect a case whose folder
is deleted, nor one whose lock a Manager cleared, so the removal subscriber here
refuses those until the retention period has passed. :func:`delete_case` and
:func:`move_case` are the doors that lift the lock under these rules.
"""

from __future__ import annotations

import datetime as dt

from plone import api
from plone.base.interfaces.siteroot import IPloneSiteRoot
from plone.locking.interfaces import ILockable

from esign.plone.errors import CaseLocked
from esign.plone.workflow.cases import SIGNED_STATE, is_locked_signed, lock_signed, state_of

DEFAULT_RETENTION_YEARS = 10


def retention_years() -> int:
    """The control panel's ``retention_years`` (10 when the site predates the setting)."""
    try:
        years = api.portal.get_registry_record("esign.retention_years", default=DEFAULT_RETENTION_YEARS)
    except Exception:  # an unknown record raises on some plone.api versions
        years = DEFAULT_RETENTION_YEARS
    return DEFAULT_RETENTION_YEARS if years is None else int(years)


def completed_at(case) -> dt.datetime | None:
    """When the last signature completed the case: the "complete" transition's time."""
    workflow = api.portal.get_tool("portal_workflow")
    for chain_id in workflow.getChainFor(case):
        history = workflow.getHistoryOf(chain_id, case) or ()
        times = [entry["time"] for entry in history if entry.get("action") == "complete"]
        if times:
            return max(times).asdatetime().astimezone(dt.UTC)
    return None


def _add_years(moment: dt.datetime, years: int) -> dt.datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February in a year that has none
        return moment.replace(year=moment.year + years, day=28)


def retained_until(case) -> dt.datetime | None:
    """When the case may first be deleted; ``None`` when it is not under retention."""
    if state_of(case) != SIGNED_STATE:
        return None
    done = completed_at(case)
    if done is None:
        return None
    return _add_years(done, retention_years())


def check_may_delete(case, *, now: dt.datetime | None = None) -> None:
    """:raises CaseLocked: naming the day deletion becomes possible."""
    until = retained_until(case)
    if until is not None and (now or dt.datetime.now(dt.UTC)) < until:
        raise CaseLocked(
            f"Ärendet är undertecknat och ska bevaras i {retention_years()} år. "
            f"Det kan tas bort tidigast {until.astimezone().date().isoformat()}."
        )


def refuse_early_removal(case, event) -> None:
    """Subscriber (IObjectWillBeRemovedEvent): stop the deletion of a signed case under retention.

    Moves and renames pass (the case lives on elsewhere), and so does the removal
    of the whole site, which is the administrator's decision, not an officer's.
    """
    if getattr(event, "newParent", None) is not None:
        return
    if IPloneSiteRoot.providedBy(event.object):
        return
    check_may_delete(case)


def delete_case(case) -> None:
    """Delete a case; a signed one only once its retention period has passed.

    :raises CaseLocked: naming the day deletion becomes possible.
    """
    check_may_delete(case)
    ILockable(case).clear_locks()
    api.content.delete(obj=case, check_linkintegrity=False)


def move_case(case, target):
    """Move a case to another folder (an archive folder, say); a signed case stays signed and locked.

    :returns: the moved case.
    """
    relock = is_locked_signed(case)
    if relock:
        ILockable(case).clear_locks()
    moved = api.content.move(source=case, target=target)
    if relock:
        lock_signed(moved)
    return moved
