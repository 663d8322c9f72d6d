"""The authorisation matrix: who knocks (roles), on which case (states), at which door, what should happen.

The table below is the product's intent written down, one row per door; the test module turns
it into one test per (door, role, state) cell. The add-on's doors are enumerated from the
component registry at run time, and a door without a row fails the suite, so a new view
cannot slip in unchecked.

Outcomes are normalised into two answers a person would notice:

- **allowed**: 2xx, or a 3xx to somewhere other than a login or "insufficient privileges" page
  (the door's own redirect, e.g. "Påminn" returning to the case with a message);
- **refused**: 401, 403, 404, 409 (the case's state says no), 423 (a lock says no), or Plone's
  redirect to a login or "insufficient privileges" page.

Anything else (a 500, a 400 where the row did not ask for one) is neither, and fails its cell.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.cookiejar
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator

import requests
import transaction
from plone import api
from plone.namedfile.file import NamedBlobFile

from helpers.journey import BankIDTester
from helpers.pdfs import one_page_pdf
from helpers.rest import RestSigner
from helpers.site import ANNA, BERTIL, identity_of

ROLES = ("anonymous", "owner", "other_officer", "signer", "other_signer", "manager", "site_admin")
STATES = ("draft", "awaiting_signature", "signed", "declined", "expired")
#: The "state" of a door that names no case.
NO_CASE = "no-case"

ALLOWED = "allowed"
REFUSED = "refused"

EVERYONE = frozenset(ROLES)
NOBODY: frozenset[str] = frozenset()
#: Who may manage a case: its officer (owner), managers, site administrators.
STAFF = frozenset({"owner", "manager", "site_admin"})
#: Who may create cases: every officer and administrator.
OFFICERS = frozenset({"owner", "other_officer", "manager", "site_admin"})
ADMINS = frozenset({"manager", "site_admin"})
MANAGER = frozenset({"manager"})
SIGNER = frozenset({"signer"})
SIGNERS = frozenset({"signer", "other_signer"})
ALL_STATES = frozenset(STATES)

PASSWORDS = {
    "owner": ("officer", "officer-secret-1"),
    "other_officer": ("officer2", "officer-secret-2"),
    "manager": ("manager", "manager-secret-1"),
    "site_admin": ("siteadmin", "siteadmin-secret-1"),
}
GLOBAL_ROLES = {
    "owner": ["SigningOfficer", "Member"],
    "other_officer": ["SigningOfficer", "Member"],
    "manager": ["Manager", "Member"],
    "site_admin": ["Site Administrator", "Member"],
}

SESSION_COOKIE = "__esign_signer"
CSRF_COOKIE = "__esign_csrf"
CSRF_FIELD = "_esign_csrf"

CASE = "esign.plone.interfaces.ISigningCase"
SITE = "plone.base.interfaces.siteroot.IPloneSiteRoot"
FOLDER = "Products.CMFCore.interfaces.IFolderish"

_LOGIN_PAGE = re.compile(r"/(require_login|login|login_form|insufficient[-_]privileges)(\?|$|/)")
_SERVICE_NAME = re.compile(r"^(GET|POST|PUT|PATCH|DELETE)_application_json_(@.+)$")


def outcome(response: requests.Response, *, refused_also: Iterable[int] = ()) -> str:
    """``allowed``, ``refused``, or ``"HTTP <status>"`` for an answer that is neither."""
    status = response.status_code
    if status in (401, 403, 404, 409, 423) or status in set(refused_also):
        return REFUSED
    if 300 <= status < 400:
        return REFUSED if _LOGIN_PAGE.search(response.headers.get("Location", "")) else ALLOWED
    if 200 <= status < 300:
        return ALLOWED
    return f"HTTP {status}"


# -- doors ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CaseRef:
    """A case as the HTTP side sees it."""

    uid: str
    id: str
    url: str
    title: str
    state: str


@dataclasses.dataclass(frozen=True)
class Call:
    """One request, before the caller's credentials are added."""

    method: str
    url: str
    params: dict | None = None
    data: dict | None = None
    json: dict | None = None
    #: Uploads: field name → (filename, bytes, content type).
    files: dict | None = None
    #: A plone.restapi / ``@esign-*`` call: ``Accept: application/json``.
    rest: bool = False
    #: A signer POST: the double-submit token as form field (pages) or ``X-CSRF-Token`` (REST).
    esign_csrf: bool = False
    #: An officer POST: plone.protect's ``_authenticator`` for the caller.
    plone_csrf: bool = False


Builder = Callable[["World", CaseRef | None], Call]
Rule = tuple[frozenset[str], frozenset[str]]


@dataclasses.dataclass(frozen=True, eq=False)
class Door:
    """A way into the site, with who may pass it in which state of the case."""

    id: str
    #: What the add-on registered for it: ``("page", for, name)`` or ``("service", for, method, name)``;
    #: ``None`` for Plone's own doors on a case (edit form, plone.restapi).
    registration: tuple | None
    build: Builder
    #: ``(roles, states)`` pairs; a cell is allowed when any pair holds it.
    allow: tuple[Rule, ...]
    #: The door names a case (``?case=``, or it is a view of one): one cell per state.
    per_state: bool = True
    #: An allowed call changes the case for good: such cells get a case of their own.
    destructive: bool = False
    #: Statuses that mean "refused" at this door besides 401/403/404/409/423.
    refused_also: frozenset[int] = frozenset()
    #: One of the signer's pages (SignerView): framing, referrer and caching headers apply.
    signer_page: bool = False
    #: The answer carries personal data: it must not be cached.
    personal: bool = False
    #: A signer door that takes a case UID: "not yours" must read as "no such case".
    idor: bool = False
    #: A call may end the caller's signer session (the mail link followed by someone else).
    may_end_session: bool = False
    #: A call starts a BankID order; it is cancelled afterwards, as BankID refuses a second
    #: order for a person who has one running.
    starts_bankid: bool = False

    def __post_init__(self) -> None:
        rules = tuple((frozenset(roles), frozenset(states)) for roles, states in self.allow)
        object.__setattr__(self, "allow", rules)

    def expected(self, role: str, state: str) -> str:
        for roles, states in self.allow:
            if role in roles and (state in states or state == NO_CASE):
                return ALLOWED
        return REFUSED

    def states(self) -> tuple[str, ...]:
        return STATES if self.per_state else (NO_CASE,)


def _case_page(name: str, **call) -> Builder:
    return lambda w, case: Call(url=f"{case.url}/{name}", **{"method": "GET", **call})


def _case_rest(path: str, **call) -> Builder:
    def build(w: World, case: CaseRef) -> Call:
        suffix = f"/{path}" if path else ""
        return Call(url=f"{w.api_url}/{case.id}{suffix}", rest=True, **{"method": "GET", **call})

    return build


def _site_page(name: str, *, case_field: bool = False, **call) -> Builder:
    def build(w: World, case: CaseRef | None) -> Call:
        method = call.get("method", "GET")
        fields = dict(call.get("data") or {})
        if case_field and case is not None:
            fields["case"] = case.uid
        options = {k: v for k, v in call.items() if k not in ("method", "data")}
        if method == "GET":
            return Call(method="GET", url=f"{w.portal_url}/@@{name}", params=fields or None, **options)
        return Call(method=method, url=f"{w.portal_url}/@@{name}", data=fields, **options)

    return build


def _site_rest(
    name: str, *, method: str = "GET", body: dict | None = None, case_field: bool = False
) -> Builder:
    def build(w: World, case: CaseRef | None) -> Call:
        fields = dict(body or {})
        if case_field and case is not None:
            fields["case"] = case.uid
        if method == "GET":
            return Call(method="GET", url=f"{w.api_url}/{name}", params=fields or None, rest=True)
        return Call(method=method, url=f"{w.api_url}/{name}", json=fields, rest=True, esign_csrf=True)

    return build


def _link(w: World, case: CaseRef | None) -> Call:
    return Call(method="GET", url=f"{w.portal_url}/@@esign-link", params={"t": w.links[case.state]})


def _transition(w: World, case: CaseRef) -> Call:
    # The officer's own way out of each state; a final state has none ("withdraw" is refused there).
    name = "send" if case.state == "draft" else "withdraw"
    return Call(method="POST", url=f"{w.api_url}/{case.id}/@workflow/{name}", rest=True)


def page(on: str, name: str) -> tuple:
    return ("page", on, name)


def service(on: str, method: str, name: str) -> tuple:
    return ("service", on, method, name)


DOORS: tuple[Door, ...] = (
    # -- the officer's pages of a case ---------------------------------------------------------
    Door(
        "case/@@view",
        page(CASE, "view"),
        _case_page("@@view"),
        allow=((STAFF, ALL_STATES),),
        personal=True,
    ),
    Door(
        "case/@@signatures",
        page(CASE, "signatures"),
        _case_page("@@signatures"),
        allow=((STAFF, ALL_STATES),),
        personal=True,
    ),
    Door(
        "case/@@signed-document",
        page(CASE, "signed-document"),
        _case_page("@@signed-document"),
        allow=((STAFF, {"signed"}),),
        personal=True,
    ),
    Door(
        "case/@@esign-evidence",
        page(CASE, "esign-evidence"),
        _case_page("@@esign-evidence"),
        allow=((STAFF, {"signed"}),),
        personal=True,
    ),
    Door(
        "case/@@esign-audit",
        page(CASE, "esign-audit"),
        _case_page("@@esign-audit"),
        allow=((STAFF, ALL_STATES),),
        personal=True,
    ),
    Door(
        # The form in awaiting_signature; elsewhere the door opens and sends the officer back with a message.
        "case/@@esign-correct-email",
        page(CASE, "esign-correct-email"),
        _case_page("@@esign-correct-email"),
        allow=((STAFF, ALL_STATES),),
        personal=True,
    ),
    Door(
        # A ZIP in a final state; before that the door opens and sends the officer back with a message.
        "case/@@esign-export",
        page(CASE, "esign-export"),
        _case_page("@@esign-export"),
        allow=((STAFF, ALL_STATES),),
        personal=True,
    ),
    Door(
        # "Validera": the report of the signed document, or "no signatures yet".
        "case/@@esign-validate",
        page(CASE, "esign-validate"),
        _case_page("@@esign-validate"),
        allow=((STAFF, ALL_STATES),),
        personal=True,
    ),
    Door(
        "case/@@esign-send-copy POST",
        page(CASE, "esign-send-copy"),
        _case_page("@@esign-send-copy", method="POST", data={}, plone_csrf=True),
        allow=((STAFF, ALL_STATES),),
    ),
    Door(
        "case/@@esign-remind POST",
        page(CASE, "esign-remind"),
        _case_page("@@esign-remind", method="POST", data={}, plone_csrf=True),
        allow=((STAFF, ALL_STATES),),
    ),
    Door(
        # Opening the form locks the case (plone.locking): an allowed call gets a case of its own.
        "case/@@edit",
        None,
        _case_page("@@edit"),
        allow=((STAFF, {"draft"}),),
        destructive=True,
    ),
    Door(
        "case/@@download/document",
        None,
        _case_page("@@download/document"),
        allow=((STAFF, ALL_STATES),),
    ),
    # -- plone.restapi and the officer's @esign-* services on a case -----------------------------
    Door(
        "GET ++api++/case",
        None,
        _case_rest(""),
        allow=((STAFF, ALL_STATES),),
        personal=True,
    ),
    Door(
        "PATCH ++api++/case",
        None,
        lambda w, case: Call(
            method="PATCH", url=f"{w.api_url}/{case.id}", json={"title": case.title}, rest=True
        ),
        allow=((STAFF, {"draft"}),),
    ),
    Door(
        # Retention keeps a signed case; managers may clear away a case still awaiting signatures.
        "DELETE ++api++/case",
        None,
        _case_rest("", method="DELETE"),
        allow=((STAFF, {"draft", "declined", "expired"}), ({"manager"}, {"awaiting_signature"})),
        destructive=True,
    ),
    Door(
        "GET ++api++/case/@workflow",
        None,
        _case_rest("@workflow"),
        allow=((STAFF, ALL_STATES),),
    ),
    Door(
        # plone.restapi answers 400 for a transition the state does not offer.
        "POST ++api++/case/@workflow/{send|withdraw}",
        None,
        _transition,
        allow=((STAFF, {"draft", "awaiting_signature"}),),
        destructive=True,
        refused_also=frozenset({400}),
    ),
    Door(
        "GET ++api++/case/@esign-status",
        service(CASE, "GET", "@esign-status"),
        _case_rest("@esign-status"),
        allow=((STAFF, ALL_STATES),),
        personal=True,
    ),
    Door(
        "GET ++api++/case/@esign-validation",
        service(CASE, "GET", "@esign-validation"),
        _case_rest("@esign-validation"),
        allow=((STAFF, {"signed"}),),
        personal=True,
    ),
    Door(
        "GET ++api++/case/@esign-download",
        service(CASE, "GET", "@esign-download"),
        _case_rest("@esign-download"),
        allow=((STAFF, {"signed"}),),
        personal=True,
    ),
    Door(
        "GET ++api++/case/@esign-audit",
        service(CASE, "GET", "@esign-audit"),
        _case_rest("@esign-audit"),
        allow=((STAFF, ALL_STATES),),
        personal=True,
    ),
    Door(
        "POST ++api++/case/@esign-remind",
        service(CASE, "POST", "@esign-remind"),
        _case_rest("@esign-remind", method="POST", json={}),
        allow=((STAFF, {"awaiting_signature"}),),
    ),
    # -- the signer's doors that name a case -----------------------------------------------------
    Door(
        # The mail's link names the case and nothing more: anyone holding it lands on the login.
        "@@esign-link?t=",
        page(SITE, "esign-link"),
        _link,
        allow=((EVERYONE, {"awaiting_signature"}),),
        signer_page=True,
        may_end_session=True,
    ),
    Door(
        "@@esign-bankid-start POST purpose=sign",
        page(SITE, "esign-bankid-start"),
        _site_page(
            "esign-bankid-start",
            case_field=True,
            method="POST",
            data={"purpose": "sign", "mode": "qr"},
            esign_csrf=True,
        ),
        allow=((SIGNER, {"awaiting_signature"}),),
        signer_page=True,
        idor=True,
        starts_bankid=True,
    ),
    Door(
        "@@esign-oidc-start POST purpose=sign",
        page(SITE, "esign-oidc-start"),
        _site_page(
            "esign-oidc-start", case_field=True, method="POST", data={"purpose": "sign"}, esign_csrf=True
        ),
        allow=((SIGNER, {"awaiting_signature"}),),
        signer_page=True,
        idor=True,
    ),
    Door(
        "@@esign-review",
        page(SITE, "esign-review"),
        _site_page("esign-review", case_field=True),
        allow=((SIGNER, {"awaiting_signature"}),),
        signer_page=True,
        personal=True,
        idor=True,
    ),
    Door(
        # While the signer may sign, and as the signed document once everyone has.
        "@@esign-signer-document",
        page(SITE, "esign-signer-document"),
        _site_page("esign-signer-document", case_field=True),
        allow=((SIGNER, {"awaiting_signature", "signed"}),),
        signer_page=True,
        personal=True,
        idor=True,
    ),
    Door(
        "@@esign-decline",
        page(SITE, "esign-decline"),
        _site_page("esign-decline", case_field=True),
        allow=((SIGNER, {"awaiting_signature"}),),
        signer_page=True,
        personal=True,
        idor=True,
    ),
    Door(
        "@@esign-decline POST",
        page(SITE, "esign-decline"),
        _site_page(
            "esign-decline",
            case_field=True,
            method="POST",
            data={"confirm": "1", "reason": "Fel belopp"},
            esign_csrf=True,
        ),
        allow=((SIGNER, {"awaiting_signature"}),),
        destructive=True,
        signer_page=True,
        idor=True,
    ),
    Door(
        # "Tack!" or "Ärendet är borttaget": for the signer who has signed or declined.
        "@@esign-done",
        page(SITE, "esign-done"),
        _site_page("esign-done", case_field=True),
        allow=((SIGNER, {"signed", "declined"}),),
        signer_page=True,
        idor=True,
    ),
    Door(
        "@@esign-download",
        page(SITE, "esign-download"),
        _site_page("esign-download", case_field=True),
        allow=((SIGNER | STAFF, {"signed"}),),
        signer_page=True,
        personal=True,
        idor=True,
    ),
    Door(
        "POST ++api++/@esign-sign",
        service(SITE, "POST", "@esign-sign"),
        _site_rest("@esign-sign", method="POST", body={"mode": "qr"}, case_field=True),
        allow=((SIGNER, {"awaiting_signature"}),),
        idor=True,
        starts_bankid=True,
    ),
    Door(
        "POST ++api++/@esign-decline",
        service(SITE, "POST", "@esign-decline"),
        _site_rest("@esign-decline", method="POST", body={"reason": "Fel belopp"}, case_field=True),
        allow=((SIGNER, {"awaiting_signature"}),),
        destructive=True,
        idor=True,
    ),
    Door(
        "GET ++api++/@esign-download?case=",
        service(SITE, "GET", "@esign-download"),
        _site_rest("@esign-download", case_field=True),
        allow=((SIGNER | STAFF, {"signed"}),),
        personal=True,
        idor=True,
    ),
    # -- the site's doors that name no case ------------------------------------------------------
    Door(
        "@@esign-my-cases",
        page(SITE, "esign-my-cases"),
        _site_page("esign-my-cases"),
        allow=((OFFICERS, ALL_STATES),),
        per_state=False,
        personal=True,
    ),
    Door(
        "@@esign-bulk-send",
        page(FOLDER, "esign-bulk-send"),
        _site_page("esign-bulk-send"),
        allow=((OFFICERS, ALL_STATES),),
        per_state=False,
    ),
    Door(
        "@@esign-export-all",
        page(FOLDER, "esign-export-all"),
        _site_page("esign-export-all"),
        allow=((OFFICERS, ALL_STATES),),
        per_state=False,
    ),
    Door(
        "@@esign-controlpanel",
        page(SITE, "esign-controlpanel"),
        _site_page("esign-controlpanel"),
        allow=((ADMINS, ALL_STATES),),
        per_state=False,
    ),
    Door(
        # Without a file: the door opens and answers "Välj en PKCS#12-fil".
        "@@esign-import-ca POST",
        page(SITE, "esign-import-ca"),
        _site_page("esign-import-ca", method="POST", data={}, plone_csrf=True),
        allow=((ADMINS, ALL_STATES),),
        per_state=False,
    ),
    Door(
        # The scheduler's door: Manage portal, which Plone gives managers, not site administrators.
        "@@esign-tick POST",
        page(SITE, "esign-tick"),
        _site_page("esign-tick", method="POST", data={}, plone_csrf=True),
        allow=((MANAGER, ALL_STATES),),
        per_state=False,
    ),
    Door(
        "@@esign-root-certificate",
        page(SITE, "esign-root-certificate"),
        _site_page("esign-root-certificate"),
        allow=((EVERYONE, ALL_STATES),),
        per_state=False,
    ),
    Door(
        "@@esign-validera",
        page(SITE, "esign-validera"),
        _site_page("esign-validera"),
        allow=((EVERYONE, ALL_STATES),),
        per_state=False,
    ),
    Door(
        "esign-pki/root.crt",
        page(SITE, "esign-pki"),
        lambda w, case: Call(method="GET", url=f"{w.portal_url}/esign-pki/root.crt"),
        allow=((EVERYONE, ALL_STATES),),
        per_state=False,
    ),
    Door(
        "esign-pki/issuing.crt",
        page(SITE, "esign-pki"),
        lambda w, case: Call(method="GET", url=f"{w.portal_url}/esign-pki/issuing.crt"),
        allow=((EVERYONE, ALL_STATES),),
        per_state=False,
    ),
    Door(
        "esign-pki/issuing.crl",
        page(SITE, "esign-pki"),
        lambda w, case: Call(method="GET", url=f"{w.portal_url}/esign-pki/issuing.crl"),
        allow=((EVERYONE, ALL_STATES),),
        per_state=False,
    ),
    Door(
        "@@esign-login",
        page(SITE, "esign-login"),
        _site_page("esign-login"),
        allow=((EVERYONE, ALL_STATES),),
        per_state=False,
        signer_page=True,
    ),
    Door(
        "@@esign-bankid-start POST purpose=login",
        page(SITE, "esign-bankid-start"),
        _site_page(
            "esign-bankid-start", method="POST", data={"purpose": "login", "mode": "qr"}, esign_csrf=True
        ),
        allow=((EVERYONE, ALL_STATES),),
        per_state=False,
        signer_page=True,
        starts_bankid=True,
    ),
    Door(
        # Only while a BankID order of this browser runs; the matrix's callers have none.
        "@@esign-bankid",
        page(SITE, "esign-bankid"),
        _site_page("esign-bankid"),
        allow=((NOBODY, ALL_STATES),),
        per_state=False,
        signer_page=True,
    ),
    Door(
        # Answers {"status": "failed"} to a browser without an order: nothing to see.
        "@@esign-bankid-status",
        page(SITE, "esign-bankid-status"),
        _site_page("esign-bankid-status"),
        allow=((EVERYONE, ALL_STATES),),
        per_state=False,
        signer_page=True,
    ),
    Door(
        "@@esign-bankid-cancel POST",
        page(SITE, "esign-bankid-cancel"),
        _site_page("esign-bankid-cancel", method="POST", data={}, esign_csrf=True),
        allow=((EVERYONE, ALL_STATES),),
        per_state=False,
        signer_page=True,
    ),
    Door(
        "@@esign-oidc-start POST purpose=login",
        page(SITE, "esign-oidc-start"),
        _site_page("esign-oidc-start", method="POST", data={"purpose": "login"}, esign_csrf=True),
        allow=((EVERYONE, ALL_STATES),),
        per_state=False,
        signer_page=True,
    ),
    Door(
        # Only as the end of a login this browser started.
        "@@esign-oidc-callback",
        page(SITE, "esign-oidc-callback"),
        _site_page("esign-oidc-callback", data={"code": "guessed", "state": "guessed"}),
        allow=((NOBODY, ALL_STATES),),
        per_state=False,
        signer_page=True,
    ),
    Door(
        "@@esign-pending",
        page(SITE, "esign-pending"),
        _site_page("esign-pending"),
        allow=((SIGNERS, ALL_STATES),),
        per_state=False,
        signer_page=True,
        personal=True,
    ),
    Door(
        "@@esign-logout",
        page(SITE, "esign-logout"),
        _site_page("esign-logout"),
        allow=((EVERYONE, ALL_STATES),),
        per_state=False,
        signer_page=True,
    ),
    Door(
        "POST ++api++/@esign-login",
        service(SITE, "POST", "@esign-login"),
        _site_rest("@esign-login", method="POST", body={"mode": "qr"}),
        allow=((EVERYONE, ALL_STATES),),
        per_state=False,
        starts_bankid=True,
    ),
    Door(
        "GET ++api++/@esign-login",
        service(SITE, "GET", "@esign-login"),
        _site_rest("@esign-login"),
        allow=((NOBODY, ALL_STATES),),
        per_state=False,
    ),
    Door(
        "GET ++api++/@esign-pending",
        service(SITE, "GET", "@esign-pending"),
        _site_rest("@esign-pending"),
        allow=((SIGNERS, ALL_STATES),),
        per_state=False,
        personal=True,
    ),
    Door(
        "GET ++api++/@esign-sign",
        service(SITE, "GET", "@esign-sign"),
        _site_rest("@esign-sign"),
        allow=((NOBODY, ALL_STATES),),
        per_state=False,
    ),
    Door(
        "POST ++api++/@esign-tick",
        service(SITE, "POST", "@esign-tick"),
        lambda w, case: Call(method="POST", url=f"{w.api_url}/@esign-tick", json={}, rest=True),
        allow=((MANAGER, ALL_STATES),),
        per_state=False,
    ),
)

# -- POSTs the matrix does not try (it only GETs these doors), for the CSRF tests -------------------


def _correct_email(email: str) -> Builder:
    def build(w: World, case: CaseRef) -> Call:
        return Call(
            method="POST",
            url=f"{case.url}/@@esign-correct-email",
            data={"form.submitted": "1", "signer": w.signer_ids[case.state], "email": email},
            plone_csrf=True,
        )

    return build


def _bulk_send(*, with_files: bool) -> Builder:
    def build(w: World, case: CaseRef | None) -> Call:
        rows = f"namn;personnummer;e-post\n{ANNA['name']};{ANNA['personal_number']};{ANNA['email']}\n"
        files = {
            "document": ("avtal.pdf", w.pdf, "application/pdf"),
            "signers_csv": ("signers.csv", rows.encode(), "text/csv"),
        }
        return Call(
            method="POST",
            url=f"{w.portal_url}/@@esign-bulk-send",
            data={"form.submitted": "1", "title": "Massutskick", "information_class": "K2"},
            files=files if with_files else None,
            plone_csrf=True,
        )

    return build


def _validera(w: World, case: CaseRef | None) -> Call:
    return Call(
        method="POST",
        url=f"{w.portal_url}/@@esign-validera",
        data={},
        files={"file": ("avtal.pdf", w.pdf, "application/pdf")},
        esign_csrf=True,
    )


@dataclasses.dataclass(frozen=True)
class Forgery:
    """A POST that must carry its CSRF token, sent as someone who may otherwise make it."""

    door: Door
    role: str
    state: str
    #: The same door with its token but harmless, showing the token is what made the difference;
    #: ``None`` for the matrix's doors, whose allowed cell is that control.
    control: Builder | None = None
    #: The call ends the session it carries: it gets a signer session of its own.
    own_session: bool = False


_CSRF_ONLY = (
    Forgery(
        Door(
            "@@esign-logout POST",
            page(SITE, "esign-logout"),
            _site_page("esign-logout", method="POST", data={}, esign_csrf=True),
            allow=((SIGNERS, ALL_STATES),),
            per_state=False,
        ),
        "signer",
        NO_CASE,
        control=_site_page("esign-logout", method="POST", data={}, esign_csrf=True),
        own_session=True,
    ),
    Forgery(
        Door(
            "case/@@esign-correct-email POST",
            page(CASE, "esign-correct-email"),
            _correct_email("anna.ny@example.se"),
            allow=((STAFF, {"awaiting_signature"}),),
        ),
        "owner",
        "awaiting_signature",
        # An address the form refuses: the door opens (400 with the form), nothing changes.
        control=_correct_email("inte-en-adress"),
    ),
    Forgery(
        Door(
            "@@esign-bulk-send POST",
            page(FOLDER, "esign-bulk-send"),
            _bulk_send(with_files=True),
            allow=((OFFICERS, ALL_STATES),),
            per_state=False,
        ),
        "owner",
        NO_CASE,
        control=_bulk_send(with_files=False),
    ),
    Forgery(
        Door(
            "@@esign-export-all POST",
            page(FOLDER, "esign-export-all"),
            _site_page("esign-export-all", method="POST", data={"state:list": "signed"}, plone_csrf=True),
            allow=((OFFICERS, ALL_STATES),),
            per_state=False,
        ),
        "owner",
        NO_CASE,
        control=_site_page("esign-export-all", method="POST", data={"state:list": "signed"}, plone_csrf=True),
    ),
    Forgery(
        Door(
            "@@esign-validera POST",
            page(SITE, "esign-validera"),
            _validera,
            allow=((EVERYONE, ALL_STATES),),
            per_state=False,
        ),
        "anonymous",
        NO_CASE,
        control=_validera,
    ),
)


class _Stub:
    """Enough of a world to see which method and token a door's call has, before any site exists."""

    portal_url = "http://stub/plone"
    api_url = "http://stub/plone/++api++"
    pdf = b""

    def __init__(self) -> None:
        self.links = dict.fromkeys(STATES, "t")
        self.signer_ids = dict.fromkeys(STATES, "s")


def sample_call(door: Door) -> Call:
    state = "draft" if door.per_state else NO_CASE
    case = (
        CaseRef(uid="u", id="c", url="http://stub/plone/c", title="t", state=state)
        if door.per_state
        else None
    )
    return door.build(_Stub(), case)


#: Where a forged POST would do the most: the state in which the door acts, not only answers.
_FORGERY_STATES = {"case/@@esign-send-copy POST": "signed", "case/@@esign-remind POST": "awaiting_signature"}


def forgeries() -> list[Forgery]:
    """Every POST that takes a CSRF token: the matrix's, each as a role and state it is allowed for."""
    found = []
    for door in DOORS:
        call = sample_call(door)
        if call.method != "POST" or not (call.esign_csrf or call.plone_csrf):
            continue
        states = (_FORGERY_STATES[door.id],) if door.id in _FORGERY_STATES else door.states()
        role, state = next((r, s) for s in states for r in ROLES if door.expected(r, s) == ALLOWED)
        found.append(Forgery(door, role, state))
    return found + list(_CSRF_ONLY)


DOORS_BY_ID = {door.id: door for door in DOORS}
assert len(DOORS_BY_ID) == len(DOORS), "two rows share an id"


def cells() -> Iterator[tuple[Door, str, str]]:
    for door in DOORS:
        for state in door.states():
            for role in ROLES:
                yield door, role, state


def registered_doors() -> set[tuple]:
    """Every browser page and REST service of the add-on: on its browser layer, or made of its classes.

    From the global component registry, as the ZCML left it: ``("page", for, name)`` and
    ``("service", for, method, name)``, ``for`` being the dotted name of the context interface.
    """
    from zope.component import getGlobalSiteManager
    from zope.interface import Interface
    from zope.publisher.interfaces.browser import IBrowserRequest

    from esign.plone.interfaces import IESignLayer

    found = set()
    for registration in getGlobalSiteManager().registeredAdapters():
        required = registration.required
        if len(required) != 2 or registration.provided is not Interface:
            continue
        if not required[1].isOrExtends(IBrowserRequest):
            continue
        ours = any(
            cls.__module__.startswith("esign.plone") for cls in getattr(registration.factory, "__mro__", ())
        )
        if required[1] is not IESignLayer and not ours:
            continue
        on = required[0].__identifier__
        match = _SERVICE_NAME.match(registration.name)
        if match:
            found.add(("service", on, match.group(1), match.group(2)))
        else:
            found.add(("page", on, registration.name))
    return found


# -- the world the doors are tried in -------------------------------------------------------------


def pdf() -> bytes:
    return one_page_pdf()


def _plone_token(username: str | None) -> str:
    """plone.protect's ``_authenticator`` for this user (anonymous for ``None``)."""
    from AccessControl.SecurityManagement import getSecurityManager, newSecurityManager, setSecurityManager
    from AccessControl.SpecialUsers import nobody
    from plone.protect.authenticator import createToken

    saved = getSecurityManager()
    try:
        if username is None:
            newSecurityManager(None, nobody)
        else:
            user = api.user.get(username=username).getUser()
            newSecurityManager(None, user)
        return createToken()
    finally:
        setSecurityManager(saved)


class World:
    """A site with one case per state, the people of every role, and a way to knock as each of them.

    The officer ("owner") owns every case; Anna is the signer of each; Bertil signs another
    officer's case only. Build it once per test class (:meth:`build`): the cases are committed.
    """

    def __init__(self, portal, tester: BankIDTester) -> None:
        self.portal = portal
        self.tester = tester
        self.portal_url = portal.absolute_url()
        self.api_url = f"{self.portal_url}/++api++"
        self.pdf = pdf()
        self.csrf = secrets.token_urlsafe(24)
        self.cases: dict[str, CaseRef] = {}
        self.other_case: CaseRef | None = None
        self.links: dict[str, str] = {}
        #: Anna's signer id in each case that has signer entries.
        self.signer_ids: dict[str, str] = {}
        #: A link token for the awaiting case whose validity ran out (the deadline passed).
        self.expired_link = secrets.token_urlsafe(24)
        self.sessions: dict[str, str] = {}
        self.plone_tokens: dict[str, str] = {}
        self.answers: dict[tuple[str, str, str], requests.Response] = {}
        # One kept-alive connection for every call (the test server takes 100 at most), and no
        # cookie jar: each call carries exactly the cookies of the role that makes it.
        self.http = requests.Session()
        self.http.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))

    # -- building ------------------------------------------------------------------------------

    def build(self) -> World:
        for role, (username, password) in PASSWORDS.items():
            user = api.user.create(email=f"{username}@regionen.se", username=username, password=password)
            api.user.grant_roles(user=user, roles=GLOBAL_ROLES[role])
        for state in STATES:
            case, link = self._make_case(state, title=f"Matris {state}")
            self.cases[state] = case
            # A draft has no signer entries, hence no link: a made-up one stands in.
            self.links[state] = link or secrets.token_urlsafe(24)
        from esign.plone import storage

        awaiting = self.cases["awaiting_signature"]
        storage.put(
            "links",
            self.expired_link,
            {"case": awaiting.uid, "signer": self.signer_ids[awaiting.state], "expires": time.time() - 60},
        )
        self.other_case, _ = self._make_case(
            "awaiting_signature", owner="officer2", signer=BERTIL, title="Matris Bertils ärende"
        )
        for role, (username, _password) in PASSWORDS.items():
            self.plone_tokens[role] = _plone_token(username)
        anonymous = _plone_token(None)
        for role in ("anonymous", "signer", "other_signer"):
            self.plone_tokens[role] = anonymous
        transaction.commit()
        self.sessions["signer"] = self.log_in(ANNA)
        self.sessions["other_signer"] = self.log_in(BERTIL)
        return self

    def _make_case(
        self, state: str, *, owner: str = "officer", signer: dict = ANNA, title: str
    ) -> tuple[CaseRef, str | None]:
        from esign.plone import api as esign
        from esign.plone.workflow import lifecycle
        from esign.plone.workflow.links import issue_link

        deadline = dt.date.today() + dt.timedelta(days=1) if state == "expired" else None
        with api.env.adopt_user(username=owner):
            case = api.content.create(
                container=self.portal,
                type="SigningCase",
                title=title,
                information_class="K2",
                document=NamedBlobFile(self.pdf, filename="avtal.pdf", contentType="application/pdf"),
                signers=[dict(signer)],
                **({"deadline": deadline} if deadline else {}),
            )
            if state != "draft":
                esign.send_case(case)
        link = None
        if state != "draft":
            record = case.signer_records[0]
            self.signer_ids.setdefault(state, record.signer_id)
            # Issued while the case awaits signatures; the transitions below kill it ("used" links).
            link = issue_link(case, record)
            if state == "signed":
                esign.sign_case(case, signer_id=record.signer_id, identity=identity_of(signer))
            elif state == "declined":
                esign.decline_case(case, signer_id=record.signer_id, reason="Fel belopp")
            elif state == "expired":
                after = dt.datetime.combine(deadline + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)
                assert case.UID() in lifecycle.expire_due(now=after)
        assert esign.state_of(case) == state
        ref = CaseRef(uid=case.UID(), id=case.getId(), url=case.absolute_url(), title=title, state=state)
        return ref, link

    def disposable(self, state: str) -> CaseRef:
        """A case of its own for a call that may change it for good (committed)."""
        self.sync()
        ref, _ = self._make_case(state, title=f"Matris {state} {uuid.uuid4().hex[:8]}")
        transaction.commit()
        return ref

    def log_in(self, person: dict) -> str:
        """A signer session for ``person``, made as a signer makes one: a BankID login over REST."""
        client = RestSigner(self.portal_url)
        client.login(self.tester, person)
        token = client.http.cookies.get(SESSION_COOKIE)
        assert token, "the login set no signer session cookie"
        return token

    def cancel_bankid_orders(self) -> None:
        for order in self.tester.pending():
            self.tester.cancel(order)

    def sync(self) -> None:
        transaction.abort()
        self.portal._p_jar.sync()

    def session_alive(self, role: str) -> bool:
        from esign.plone import storage

        self.sync()
        return storage.get("sessions", self.sessions[role]) is not None

    def restore_sessions(self) -> None:
        """Log in again whoever a call logged out (the mail link followed by another person does)."""
        for role, person in (("signer", ANNA), ("other_signer", BERTIL)):
            if not self.session_alive(role):
                self.sessions[role] = self.log_in(person)

    # -- knocking ----------------------------------------------------------------------------

    def case_for(self, door: Door, role: str, state: str) -> CaseRef | None:
        if state == NO_CASE:
            return None
        # A cell the product gets wrong is an open door: it gets a case of its own too.
        if door.destructive and (door.expected(role, state) == ALLOWED or discrepancy(door.id, role, state)):
            return self.disposable(state)
        return self.cases[state]

    def knock(
        self,
        role: str,
        call: Call,
        *,
        csrf: str = "valid",
        session: str | None = None,
    ) -> requests.Response:
        """Send ``call`` as ``role``: Basic auth for Plone users, the session cookie for signers.

        ``csrf`` is what the call carries as its CSRF token: ``valid``, ``missing`` or ``wrong``.
        """
        headers = {"Accept": "application/json"} if call.rest else {}
        jar = {CSRF_COOKIE: self.csrf}
        token = session or self.sessions.get(role)
        if token:
            jar[SESSION_COOKIE] = token
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in jar.items())
        data = dict(call.data) if call.data is not None else None
        if csrf != "missing" and call.esign_csrf:
            value = self.csrf if csrf == "valid" else secrets.token_urlsafe(24)
            if call.rest:
                headers["X-CSRF-Token"] = value
            else:
                data[CSRF_FIELD] = value
        if csrf != "missing" and call.plone_csrf:
            data["_authenticator"] = self.plone_tokens[role] if csrf == "valid" else secrets.token_hex(20)
        return self.http.request(
            call.method,
            call.url,
            params=call.params,
            data=data,
            json=call.json,
            files=call.files,
            headers=headers,
            auth=PASSWORDS.get(role),
            allow_redirects=False,
            timeout=60,
        )

    def answer(self, door: Door, role: str, state: str) -> requests.Response:
        """The door's answer to ``role`` for the case in ``state`` (asked once, then remembered)."""
        key = (door.id, role, state)
        if key not in self.answers:
            case = self.case_for(door, role, state)
            self.answers[key] = self.knock(role, door.build(self, case))
            if door.may_end_session and role in SIGNERS:
                self.restore_sessions()
            if door.starts_bankid:
                self.cancel_bankid_orders()
        return self.answers[key]

    def snapshot(self) -> dict:
        """What a refused call must leave as it was: every case's state, signers and trail; the stores."""
        from esign.plone import audit, storage

        self.sync()
        seen = {}
        with api.env.adopt_roles(["Manager"]):
            for brain in api.content.find(portal_type="SigningCase", unrestricted=True):
                case = brain._unrestrictedGetObject()
                seen[case.UID()] = (
                    api.content.get_state(obj=case),
                    case.title,
                    tuple((r.status, r.email) for r in case.signer_records or ()),
                    len(audit.entries(case)),
                )
        stores = {name: len(storage.store(name)) for name in ("links", "sessions", "flows")}
        return {"cases": seen, "stores": stores, "bankid_orders": len(self.tester.pending())}


@dataclasses.dataclass(frozen=True)
class Discrepancy:
    """A cell where the product does not do what the table says: the test is a strict xfail."""

    door: str
    roles: frozenset[str]
    states: frozenset[str]
    reason: str


#: What the matrix found; each entry is in the report, with its fix.
DISCREPANCIES: tuple[Discrepancy, ...] = (
    # Empty: the signer pages now check the case's state (browser/signer.py). A door found
    # open where it should be shut goes here, with the reason, as a strict xfail.
)

#: POST doors (``Forgery.door.id``) that take a forged POST: the reason, for a strict xfail.
CSRF_GAPS: dict[str, str] = {}

#: ``(door id, check)`` → reason: security headers the product does not send yet (none now:
#: signer pages and @esign-* services send nosniff, case answers no-store via events.py).
HEADER_GAPS: dict[tuple[str, str], str] = {}


def discrepancy(door_id: str, role: str, state: str) -> str | None:
    for known in DISCREPANCIES:
        if known.door == door_id and role in known.roles and state in known.states:
            return known.reason
    return None
