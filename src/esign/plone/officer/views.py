""" "Mina ärenden": the officer's signing cases by state, with progress and deadline.

Signers appear by name only: this page lists many cases at once, and a
listing shows no personnummer or HSA-id, not even masked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from urllib.parse import urlencode

from plone import api
from Products.Five.browser import BrowserView
from zope.i18nmessageid import Message

from esign.plone import _
from esign.plone.content.signing_case import PENDING, SIGNED
from esign.plone.workflow import cases
from esign.plone.workflow.lifecycle import EXPIRED_STATE, deadline_passed

#: The states in the order a case lives through them, with the headings of their groups.
STATES: dict[str, Message] = {
    cases.DRAFT: _("state_draft", default="Utkast"),
    cases.AWAITING: _("state_awaiting_signature", default="Väntar på underskrift"),
    cases.SIGNED_STATE: _("state_signed", default="Undertecknat"),
    cases.DECLINED_STATE: _("state_declined", default="Avböjt"),
    EXPIRED_STATE: _("state_expired", default="Utgånget"),
}


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
    state: str
    title: Message
    rows: tuple[CaseRow, ...]


def case_row(case) -> CaseRow:
    records = case.signer_records
    if records is None:
        # A draft: the signer list is still the officer's to change.
        signed, total, waiting = 0, len(case.signers or ()), ()
    else:
        signed = sum(1 for r in records if r.status == SIGNED)
        total = len(records)
        waiting = ()
        if cases.state_of(case) == cases.AWAITING:
            waiting = tuple(r.name for r in records if r.status == PENDING)
    state = cases.state_of(case)
    deadline = getattr(case, "deadline", None)
    return CaseRow(
        url=case.absolute_url(),
        title=case.Title(),
        case_number=getattr(case, "case_number", None) or "",
        state=state,
        signed=signed,
        total=total,
        waiting_for=waiting,
        deadline=deadline,
        overdue=state == cases.AWAITING and deadline_passed(case),
        modified=case.modified().strftime("%Y-%m-%d %H:%M"),
    )


def matches(row: CaseRow, query: str) -> bool:
    """The search box: a piece of the title or the diarienummer, in any case."""
    needle = query.strip().casefold()
    return not needle or needle in row.title.casefold() or needle in row.case_number.casefold()


class MyCases(BrowserView):
    """``@@esign-my-cases``: ``?q=`` searches, ``?state=`` filters; ``?all=1`` shows everyone's.

    Only administrators (Manage portal) get ``all``; everyone else sees the cases they created.
    """

    def query(self) -> str:
        return (self.request.form.get("q") or "").strip()

    def state_filter(self) -> str | None:
        state = self.request.form.get("state")
        return state if state in STATES else None

    def may_see_all(self) -> bool:
        return api.user.has_permission("Manage portal", obj=api.portal.get())

    def show_all(self) -> bool:
        return self.may_see_all() and self.request.form.get("all") == "1"

    def cases(self) -> list:
        criteria = {"portal_type": "SigningCase", "sort_on": "modified", "sort_order": "descending"}
        if not self.show_all():
            criteria["Creator"] = api.user.get_current().getId()
        state = self.state_filter()
        if state:
            criteria["review_state"] = state
        return [brain.getObject() for brain in api.content.find(**criteria)]

    def rows(self) -> list[CaseRow]:
        query = self.query()
        return [row for row in map(case_row, self.cases()) if matches(row, query)]

    def groups(self) -> list[StateGroup]:
        rows = self.rows()
        return [
            StateGroup(state=state, title=title, rows=tuple(r for r in rows if r.state == state))
            for state, title in STATES.items()
            if any(r.state == state for r in rows)
        ]

    def filters(self) -> list[dict]:
        """Links that narrow the listing to one state (or show every state), keeping the search."""
        current = self.state_filter()
        keep = {"q": self.query()} if self.query() else {}
        if self.show_all():
            keep["all"] = "1"
        base = f"{api.portal.get().absolute_url()}/@@esign-my-cases"
        choices = [(None, _("filter_all_states", default="Alla")), *STATES.items()]
        return [
            {
                "title": title,
                "url": _url(base, {**keep, "state": state} if state else keep),
                "current": state == current,
            }
            for state, title in choices
        ]


def _url(base: str, params: dict) -> str:
    return f"{base}?{urlencode(params)}" if params else base
