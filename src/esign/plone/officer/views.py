""" "Mina ärenden": the officer's signing cases by state, with progress and deadline.

Signers appear by name only: this page lists many cases at once, and a
listing shows no personnummer or HSA-id, not even masked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from urllib.parse import urlencode

import Missing
from plone import api
from Products.Five.browser import BrowserView
from zope.i18nmessageid import Message

from esign.plone import _
from esign.plone.workflow import cases
from esign.plone.workflow.lifecycle import EXPIRED_STATE, swedish_today

#: The states in the order a case lives through them, with the headings of their groups.
STATES: dict[str, Message] = {
    cases.DRAFT: _("state_draft", default="Utkast"),
    cases.AWAITING: _("state_awaiting_signature", default="Väntar på underskrift"),
    cases.SIGNED_STATE: _("state_signed", default="Undertecknat"),
    cases.DECLINED_STATE: _("state_declined", default="Avböjt"),
    EXPIRED_STATE: _("state_expired", default="Utgånget"),
}

#: Rows per state on one page.
PAGE_SIZE = 50


@dataclasses.dataclass(frozen=True)
class CaseRow:
    """One case in the listing."""

    #: The case's address.
    url: str
    title: str
    #: Diarienummer, or "".
    case_number: str
    state: str
    #: Signatures made so far.
    signed: int
    #: Signers in all.
    total: int
    #: Names of the signers who have not answered yet, while the case awaits signatures.
    waiting_for: tuple[str, ...]
    #: Last day to sign, or ``None``.
    deadline: dt.date | None
    #: The last day has passed while the case still awaits signatures.
    overdue: bool
    #: "YYYY-MM-DD HH:MM", local time.
    modified: str

    @property
    def progress(self) -> Message:
        return _(
            "progress_signed",
            default="${signed} av ${total} undertecknat",
            mapping={"signed": self.signed, "total": self.total},
        )


@dataclasses.dataclass(frozen=True)
class StateGroup:
    """The cases of one state: one page of rows, the count of all of them, links to the others."""

    state: str
    title: Message
    rows: tuple[CaseRow, ...]
    #: Cases of this state that match the search, on every page.
    total: int
    #: Position of the first row among them (0 on the first page).
    start: int = 0
    #: The next page (the state's own list when every state is shown), or ``None``.
    next_url: str | None = None
    #: The page before, or ``None``.
    previous_url: str | None = None

    @property
    def range_text(self) -> Message:
        return _(
            "showing_range",
            default="Visar ${first}–${last} av ${total}",
            mapping={"first": self.start + 1, "last": self.start + len(self.rows), "total": self.total},
        )

    @property
    def paged(self) -> bool:
        return self.total > len(self.rows)


def _column(brain, name: str, default):
    """A metadata column; ``default`` where the catalog has no value (a case not reindexed yet)."""
    value = getattr(brain, name, None)
    return default if value is None or value is Missing.Value else value


def case_row(brain, *, today: dt.date) -> CaseRow:
    """A row from the catalog's record of a case, without loading the case."""
    state = brain.review_state
    deadline = _column(brain, "esign_deadline", None)
    return CaseRow(
        url=brain.getURL(),
        title=brain.Title or "",
        case_number=_column(brain, "esign_case_number", ""),
        state=state,
        signed=_column(brain, "esign_signed_count", 0),
        total=_column(brain, "esign_signer_count", 0),
        waiting_for=tuple(_column(brain, "esign_waiting_for", ())) if state == cases.AWAITING else (),
        deadline=deadline,
        # As deadline_passed decides for the expiry tick: the day is over in Swedish time.
        overdue=state == cases.AWAITING and deadline is not None and today > deadline,
        modified=brain.modified.strftime("%Y-%m-%d %H:%M"),
    )


def matches(brain, needle: str) -> bool:
    """The search box: a piece of the title or the diarienummer, in any case (``needle`` casefolded)."""
    return (
        not needle
        or needle in (brain.Title or "").casefold()
        or needle in _column(brain, "esign_case_number", "").casefold()
    )


class MyCases(BrowserView):
    """``@@esign-my-cases``: ``?q=`` searches, ``?state=`` filters; ``?all=1`` shows everyone's.

    Only administrators (Manage portal) get ``all``; everyone else sees the cases they created.
    Every state shows at most :data:`PAGE_SIZE` rows; with ``?state=`` the list pages by
    ``?b_start=``. Rows come from catalog metadata (:mod:`esign.plone.officer.catalog`), so
    no case is loaded: the page costs catalog queries and one page of rows per state.
    """

    def query(self) -> str:
        value = self.request.form.get("q")
        return value.strip() if isinstance(value, str) else ""

    def state_filter(self) -> str | None:
        state = self.request.form.get("state")
        return state if isinstance(state, str) and state in STATES else None

    def b_start(self) -> int:
        """Where the filtered list's page starts; only with ``?state=``."""
        if self.state_filter() is None:
            return 0
        try:
            return max(int(self.request.form.get("b_start") or 0), 0)
        except (TypeError, ValueError):
            return 0

    def may_see_all(self) -> bool:
        return api.user.has_permission("Manage portal", obj=api.portal.get())

    def show_all(self) -> bool:
        return self.may_see_all() and self.request.form.get("all") == "1"

    def _criteria(self) -> dict:
        criteria = {"portal_type": "SigningCase", "sort_on": "modified", "sort_order": "descending"}
        if not self.show_all():
            criteria["Creator"] = api.user.get_current().getId()
        return criteria

    def groups(self) -> list[StateGroup]:
        states = [self.state_filter()] if self.state_filter() else list(STATES)
        start = self.b_start()
        found = self._search(states) if self.query() else self._find(states)
        today = swedish_today()
        groups = []
        for state, brains in found.items():
            total = len(brains)
            if not total:
                continue
            # Past the end (an old link after cases moved on): the last page instead.
            first = start if start < total else (total - 1) // PAGE_SIZE * PAGE_SIZE
            rows = [case_row(brains[i], today=today) for i in range(first, min(first + PAGE_SIZE, total))]
            groups.append(self._group(state, rows, total=total, start=first))
        return groups

    def _find(self, states: list[str]) -> dict[str, Sequence]:
        """Each state's brains, newest first, as lazy results: only the rows shown are read."""
        # The whole state is sorted and the page sliced from the lazy result, rather than
        # handing the catalog b_start/b_size: its shortcut for a limited sort orders cases
        # modified in the same minute (a bulk send) differently from page to page.
        return {state: api.content.find(**self._criteria(), review_state=state) for state in states}

    def _search(self, states: list[str]) -> dict[str, Sequence]:
        """Like :meth:`_find`, for the cases whose title or diarienummer holds the search text."""
        # A substring of two columns: no index answers that, so the metadata is read brain by
        # brain (never the cases themselves).
        needle = self.query().casefold()
        found: dict[str, list] = {state: [] for state in states}
        for brain in api.content.find(**self._criteria(), review_state=states):
            if brain.review_state in found and matches(brain, needle):
                found[brain.review_state].append(brain)
        return found

    def _group(self, state: str, rows: list[CaseRow], *, total: int, start: int) -> StateGroup:
        if self.state_filter() is None:
            more = total > len(rows)
            return StateGroup(
                state=state,
                title=STATES[state],
                rows=tuple(rows),
                total=total,
                next_url=self._url(state=state, b_start=PAGE_SIZE) if more else None,
            )
        return StateGroup(
            state=state,
            title=STATES[state],
            rows=tuple(rows),
            total=total,
            start=start,
            next_url=self._url(state=state, b_start=start + PAGE_SIZE) if start + PAGE_SIZE < total else None,
            previous_url=self._url(state=state, b_start=max(start - PAGE_SIZE, 0)) if start else None,
        )

    def _url(self, *, state: str | None = None, b_start: int = 0) -> str:
        """This page with the search and the "all" toggle kept."""
        params: dict[str, str] = {}
        if self.query():
            params["q"] = self.query()
        if self.show_all():
            params["all"] = "1"
        if state:
            params["state"] = state
        if b_start:
            params["b_start"] = str(b_start)
        base = f"{api.portal.get().absolute_url()}/@@esign-my-cases"
        return f"{base}?{urlencode(params)}" if params else base

    def filters(self) -> list[dict]:
        """Links that narrow the listing to one state (or show every state), keeping the search."""
        current = self.state_filter()
        choices = [(None, _("filter_all_states", default="Alla")), *STATES.items()]
        return [
            {"title": title, "url": self._url(state=state), "current": state == current}
            for state, title in choices
        ]
