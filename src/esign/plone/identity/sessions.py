"""Signer sessions and login flows: no Plone accounts, state in the ZODB.

A citizen or staff member who logs in with BankID or SITHS gets a signer
session, not a member account. The browser holds a random token in an HttpOnly
cookie; the database holds its hash, the verified identity and an idle expiry
(15 minutes unless configured). A *flow* is the state of a login or signing in
progress (a BankID order, an OIDC authorization request), kept the same way.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import time
from dataclasses import dataclass

from plone import api

from esign.plone import storage
from esign.plone.errors import Forbidden, NotAuthenticated
from esign.plone.signing.values import AuthenticationContext, VerifiedIdentity

SESSION_COOKIE = "__esign_signer"
FLOW_COOKIE = "__esign_flow"
CSRF_COOKIE = "__esign_csrf"
CSRF_FIELD = "_esign_csrf"

SESSIONS = "sessions"
FLOWS = "flows"
FLOW_SECONDS = 10 * 60
#: Refresh the idle expiry at most this often, so reading pages rarely writes.
REFRESH_SECONDS = 60


@dataclass(frozen=True)
class SignerSession:
    token: str
    identity: VerifiedIdentity
    expires: float

    @property
    def personal_number(self) -> str | None:
        return self.identity.personal_number

    @property
    def hsa_id(self) -> str | None:
        return self.identity.hsa_id


def idle_seconds() -> int:
    minutes = api.portal.get_registry_record("esign.session_idle_minutes", default=15) or 15
    return int(minutes) * 60


def _cookie_path() -> str:
    return "/" + "/".join(api.portal.get().getPhysicalPath()[1:])


def _set_cookie(request, name: str, value: str, *, max_age: int | None = None) -> None:
    secure = request.get("SERVER_URL", "").startswith("https://")
    options = {"path": _cookie_path(), "http_only": True, "same_site": "Lax", "secure": secure}
    if max_age is not None:
        options["max_age"] = max_age
    # Zope merges a second setCookie into the first: an expiry queued earlier in
    # this response would otherwise stick to the new cookie.
    request.response.cookies.pop(name, None)
    request.response.setCookie(name, value, **options)


def _expire_cookie(request, name: str) -> None:
    request.response.expireCookie(name, path=_cookie_path())


def _identity_to_dict(identity: VerifiedIdentity) -> dict:
    ctx = identity.context
    return {
        "given_name": identity.given_name,
        "surname": identity.surname,
        "personal_number": identity.personal_number,
        "hsa_id": identity.hsa_id,
        "email": identity.email,
        "method": ctx.method,
        "identity_provider": ctx.identity_provider,
        "authenticated_at": ctx.authenticated_at.isoformat(),
        "level_of_assurance": ctx.level_of_assurance,
        "transaction_ref": ctx.transaction_ref,
    }


def _identity_from(entry) -> VerifiedIdentity:
    return VerifiedIdentity(
        given_name=entry["given_name"],
        surname=entry["surname"],
        personal_number=entry.get("personal_number"),
        hsa_id=entry.get("hsa_id"),
        email=entry.get("email"),
        context=AuthenticationContext(
            method=entry["method"],
            identity_provider=entry["identity_provider"],
            authenticated_at=dt.datetime.fromisoformat(entry["authenticated_at"]),
            level_of_assurance=entry["level_of_assurance"],
            transaction_ref=entry.get("transaction_ref", ""),
        ),
    )


def create_session(request, identity: VerifiedIdentity) -> SignerSession:
    """Log the person in as a signer (replacing any earlier signer session)."""
    end_session(request)
    token = secrets.token_urlsafe(32)
    now = time.time()
    expires = now + idle_seconds()
    storage.put(SESSIONS, token, {**_identity_to_dict(identity), "expires": expires, "refreshed": now})
    storage.purge_expired(SESSIONS)
    _set_cookie(request, SESSION_COOKIE, token)
    return SignerSession(token=token, identity=identity, expires=expires)


def current_session(request) -> SignerSession | None:
    token = request.cookies.get(SESSION_COOKIE)
    entry = storage.get(SESSIONS, token)
    if entry is None:
        return None
    now = time.time()
    if now - entry.get("refreshed", 0) > REFRESH_SECONDS:
        entry["expires"] = now + idle_seconds()
        entry["refreshed"] = now
    return SignerSession(token=token, identity=_identity_from(entry), expires=entry["expires"])


def require_session(request) -> SignerSession:
    session = current_session(request)
    if session is None:
        raise NotAuthenticated("Du är inte inloggad, eller har varit inaktiv för länge. Logga in igen.")
    return session


def end_session(request) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        storage.delete(SESSIONS, token)
    _expire_cookie(request, SESSION_COOKIE)


# -- flows -----------------------------------------------------------------------


def start_flow(request, data: dict, *, seconds: int = FLOW_SECONDS) -> str:
    token = secrets.token_urlsafe(32)
    storage.put(FLOWS, token, {**data, "expires": time.time() + seconds})
    storage.purge_expired(FLOWS)
    _set_cookie(request, FLOW_COOKIE, token)
    return token


def current_flow(request):
    return storage.get(FLOWS, request.cookies.get(FLOW_COOKIE))


def end_flow(request) -> None:
    token = request.cookies.get(FLOW_COOKIE)
    if token:
        storage.delete(FLOWS, token)
    _expire_cookie(request, FLOW_COOKIE)


# -- CSRF ------------------------------------------------------------------------


def csrf_token(request) -> str:
    """Double-submit token for the signer pages (plone.protect does not cover anonymous POSTs)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request, "_esign_csrf", None)
    if not token:
        token = secrets.token_urlsafe(24)
        request._esign_csrf = token
        secure = request.get("SERVER_URL", "").startswith("https://")
        request.response.setCookie(
            CSRF_COOKIE, token, path=_cookie_path(), http_only=True, same_site="Strict", secure=secure
        )
    return token


def check_csrf(request) -> None:
    if request.method != "POST":
        raise Forbidden("Formuläret måste skickas med POST.")
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    sent = request.form.get(CSRF_FIELD) or ""
    if not cookie or not hmac.compare_digest(cookie, sent):
        raise Forbidden("Formuläret kunde inte verifieras. Ladda om sidan och försök igen.")
