"""When the database cannot be reached: a clear answer instead of a server error.

In cluster mode the ZODB is RelStorage on PostgreSQL, a server of its own that can go away
for a moment (a restart, a failover, a network cut). Zope opens its database connection
before it publishes anything (``ZPublisher.WSGIPublisher.load_app``), so an unreachable
database raises outside every exception view and the WSGI server answers its own English
"500 Internal Server Error"; a connection lost in the middle of a request raises inside it,
where Plone's error page says 500. Neither request committed anything: the person may try
again as soon as the database is back, and RelStorage reconnects by itself. So both answer
``503 Service Unavailable`` with ``Retry-After``: a short Swedish page, or for a client that
asks for JSON (the REST API, the BankID progress page's poll)
``{"error": {"type": "DatabaseUnavailable", "message": ...}}``.

:func:`database_guard` wraps the Zope WSGI application (``scripts/cluster.py`` serves it so);
:class:`DatabaseUnavailableView` is the exception view for what is raised inside a request.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable

from Products.Five.browser import BrowserView
from ZODB.POSException import ConflictError
from zope.interface import Interface, classImplements

logger = logging.getLogger("esign.plone.database")

#: What a person reads while the database is away (nothing of their request was kept).
UNAVAILABLE = "Tjänsten är tillfälligt otillgänglig. Försök igen om en stund."
ERROR_TYPE = "DatabaseUnavailable"
#: What a person reads when Zope gave up retrying a request that kept colliding with others.
BUSY = "Många gör samma sak just nu, och din begäran kunde inte göras. Ingenting ändrades. Försök igen."
BUSY_TYPE = "DatabaseBusy"
#: Seconds a client is asked to wait: a restarted PostgreSQL is back within a few.
RETRY_AFTER = 10


class IDatabaseUnavailable(Interface):
    """Marks the exceptions that say the database cannot be reached right now."""


class IDatabaseBusy(Interface):
    """Marks a ZODB conflict that Zope no longer retries: the message would name object ids."""


classImplements(ConflictError, IDatabaseBusy)


def _database_errors() -> tuple[type[BaseException], ...]:
    """What RelStorage's PostgreSQL driver raises for a lost or refused connection
    (RelStorage's own ``disconnected_exceptions`` for psycopg2), and RelStorage's error for a
    connection lost during a commit once Zope has used up its retries of the request."""
    errors: list[type[BaseException]] = []
    try:
        import psycopg2
    except ImportError:  # FileStorage or ZEO: no database server of ours to lose
        pass
    else:
        errors += [psycopg2.OperationalError, psycopg2.InterfaceError]
    try:
        from relstorage.adapters.interfaces import ReplicaClosedException
        from relstorage.storage.interfaces import StorageDisconnectedDuringCommit
    except ImportError:
        pass
    else:
        errors += [StorageDisconnectedDuringCommit, ReplicaClosedException]
    return tuple(errors)


DATABASE_ERRORS = _database_errors()
for _error in DATABASE_ERRORS:
    # The exception view below is looked up by what the exception provides.
    classImplements(_error, IDatabaseUnavailable)


def wants_json(accept: str) -> bool:
    return "application/json" in (accept or "")


def unavailable_answer(
    accept: str, *, message: str = UNAVAILABLE, error_type: str = ERROR_TYPE
) -> tuple[str, dict[str, str], bytes]:
    """Content type, headers and body of the 503 for a client that sent ``accept``."""
    headers = {"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"}
    if wants_json(accept):
        body = json.dumps({"error": {"type": error_type, "message": message}}, ensure_ascii=False)
        return "application/json; charset=utf-8", headers, body.encode("utf-8")
    # Self-contained: the site's templates are in the database that is away.
    page = f"""<!DOCTYPE html>
<html lang="sv">
<head><meta charset="utf-8" /><title>E-underskrift</title>
<meta name="viewport" content="width=device-width, initial-scale=1" /></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em">
<h1>E-underskrift</h1>
<div class="esign-error" role="alert">{message}</div>
</body>
</html>
"""
    return "text/html; charset=utf-8", headers, page.encode("utf-8")


def database_guard(app: Callable) -> Callable:
    """WSGI middleware around Zope: a database that cannot be reached answers 503, not 500.

    :param app: the Zope WSGI application (``ZPublisher.WSGIPublisher.publish_module``).
    :returns: the wrapped application.
    """

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            return app(environ, start_response)
        except DATABASE_ERRORS as exc:
            # The driver's message names the server's address, never anything of the person.
            logger.warning(
                "Database unavailable, answered 503 to %s: %s: %s",
                environ.get("PATH_INFO", ""),
                type(exc).__name__,
                " ".join(str(exc).split()),
            )
            content_type, headers, body = unavailable_answer(environ.get("HTTP_ACCEPT", ""))
            start_response(
                "503 Service Unavailable",
                [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers.items()],
                sys.exc_info(),
            )
            return [body]

    return guarded


def filter_app_factory(app: Callable, global_conf: dict | None = None, **local_conf) -> Callable:
    """PasteDeploy filter for a ``zope.ini`` (``use = egg:esign.plone#database_guard``)."""
    return database_guard(app)


class DatabaseUnavailableView(BrowserView):
    """The exception view for a connection lost in the middle of a request (``index.html``)."""

    message = UNAVAILABLE
    error_type = ERROR_TYPE
    what = "Database connection lost during a request"

    def __call__(self) -> bytes:
        logger.warning("%s, answered 503: %s", self.what, type(self.context).__name__)
        response = self.request.response
        content_type, headers, body = unavailable_answer(
            self.request.getHeader("Accept", ""), message=self.message, error_type=self.error_type
        )
        response.setStatus(503)
        response.setHeader("Content-Type", content_type)
        for name, value in headers.items():
            response.setHeader(name, value)
        return body


class DatabaseBusyView(DatabaseUnavailableView):
    """The exception view for a conflict Zope gave up retrying: 503, nothing changed, try again."""

    message = BUSY
    error_type = BUSY_TYPE
    what = "Request gave up after repeated ZODB conflicts"
