"""What every esign REST service shares: errors as JSON, permission and CSRF checks.

The services are registered with ``zope.Public`` and check the permission
themselves: a permission in ZCML makes the publisher raise Unauthorized before
the service runs, and plone.rest then answers in its own shape
(``{"type", "message"}``, plus a traceback for managers) instead of ours.

A POST by a Plone user (officer, manager) is exempt from plone.protect's form
token, as plone.restapi's own writing services (``@workflow``, content add) are;
without that, plone.protect may abort the POST's writes after the answer was made
(it did so for ``@esign-tick`` on the site, answering 200 with nothing committed).
Signers are anonymous to Plone: their POSTs need the double-submit CSRF header
instead (:func:`check_csrf_header`).
"""

from __future__ import annotations

import hmac
import json

import transaction
from AccessControl import getSecurityManager
from plone import api
from plone.protect.interfaces import IDisableCSRFProtection
from plone.restapi.deserializer import json_body
from plone.restapi.exceptions import DeserializationError
from plone.restapi.services import Service, _no_content_marker
from zExceptions import BadRequest, Unauthorized
from zExceptions import NotFound as ZNotFound
from ZODB.POSException import ConflictError
from zope.interface import alsoProvides

from esign.plone import logger
from esign.plone.errors import ESignError, Forbidden, InvalidInput, NotAuthenticated
from esign.plone.identity import sessions

#: The header a cookie-authenticated signer POST must carry: the value of the ``__esign_csrf`` cookie.
CSRF_HEADER = "X-CSRF-Token"


class ESignService(Service):
    """Base of the esign services: ``reply()`` does the work, errors become JSON."""

    #: Permission checked on the context; ``None`` for the signer doors, which check the session.
    permission: str | None = "View"
    #: A door for signers (no Plone account): hand out the CSRF token, require it on POST.
    signer_door = False

    def render(self):
        response = self.request.response
        response.setHeader("Cache-Control", "no-store, private")
        response.setHeader("X-Content-Type-Options", "nosniff")
        try:
            self.check_permission()
            self.check_context_permission()
            if self.signer_door:
                response.setHeader(CSRF_HEADER, sessions.csrf_token(self.request))
                if self.request.method == "POST":
                    check_csrf_header(self.request)
            elif self.request.method == "POST":
                if not getattr(self.request, "_auth", None) and "__ac" in self.request.cookies:
                    # Logged in by cookie (a browser): a forged cross-site POST would carry
                    # the cookie too; plone.protect's token must come with it. Basic-auth
                    # and JWT clients send credentials a forger cannot.
                    from plone.protect.authenticator import check as check_authenticator
                    from zExceptions import Forbidden as ZForbidden

                    try:
                        check_authenticator(self.request)
                    except ZForbidden:
                        raise Forbidden("Formuläret kunde inte verifieras (CSRF). Ladda om sidan.") from None
                alsoProvides(self.request, IDisableCSRFProtection)
            content = self.reply()
        except ConflictError:
            raise  # Zope retries the request
        except ESignError as exc:
            return self.error(exc.http_status, exc.kind, exc.message)
        except DeserializationError as exc:
            return self.error(400, InvalidInput.kind, f"Anropets innehåll är inte ett JSON-objekt: {exc}")
        except Unauthorized:
            if api.user.is_anonymous():
                return self.error(401, NotAuthenticated.kind, "Logga in för att göra detta.")
            return self.error(403, Forbidden.kind, "Du har inte behörighet att göra detta.")
        except ZNotFound:
            return self.error(404, "NotFound", "Resursen finns inte.")
        except BadRequest as exc:
            return self.error(400, InvalidInput.kind, str(exc))
        except Exception:
            logger.exception("esign REST service %s failed", self.__name__)
            return self.error(500, "InternalError", "Ett oväntat fel inträffade. Försök igen senare.")
        if content is _no_content_marker:
            return None
        if not isinstance(content, (dict, list)):
            return content  # a file stream; the service has set its headers
        response.setHeader("Content-Type", self.content_type)
        return json.dumps(content, indent=2, sort_keys=True, separators=(", ", ": "))

    def check_context_permission(self) -> None:
        if self.permission and not getSecurityManager().checkPermission(self.permission, self.context):
            raise Unauthorized(self.permission)

    def error(self, status: int, kind: str, message: str) -> str:
        # Nothing a refused request did may stay: a half-started flow, a refreshed session.
        transaction.doom()
        response = self.request.response
        response.setStatus(status)
        response.setHeader("Content-Type", "application/json")
        return json.dumps({"error": {"type": kind, "message": message}}, indent=2, sort_keys=True)

    def body(self) -> dict:
        return json_body(self.request)

    def api_url(self, name: str, context=None) -> str:
        """``@id`` of a service on ``context`` (the portal by default), as plone.restapi writes them."""
        return f"{(context or api.portal.get()).absolute_url()}/{name}"


def check_csrf_header(request) -> None:
    """Double submit: the header must repeat the ``__esign_csrf`` cookie.

    Signers are anonymous to Plone, so plone.protect does not guard their POSTs;
    another site can make a browser send the cookie but cannot read it to set the header.
    """
    cookie = request.cookies.get(sessions.CSRF_COOKIE) or ""
    sent = request.getHeader(CSRF_HEADER) or ""
    if not cookie or not hmac.compare_digest(cookie, sent):
        raise Forbidden(
            f"CSRF-token saknas eller stämmer inte. Skicka huvudet {CSRF_HEADER} med det värde "
            "som svaren från esign-tjänsterna har i samma huvud."
        )


def text(data: dict, name: str, *, required: bool = True, default: str = "") -> str:
    value = data.get(name, default)
    if value is None:
        value = default
    if not isinstance(value, str):
        raise InvalidInput(f"Fältet {name!r} ska vara en textsträng.", field=name)
    if required and not value.strip():
        raise InvalidInput(f"Fältet {name!r} saknas.", field=name)
    return value
