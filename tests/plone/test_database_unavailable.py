"""The database cannot be reached: a Swedish 503, never Plone's error page or the WSGI server's 500.

The whole story (PostgreSQL stopped and restarted under two instances) is in
``tests/cluster/test_postgres_restart.py``; here the two doors on their own.
"""

from __future__ import annotations

import json

import psycopg2
import pytest
from ZPublisher.WSGIPublisher import _exc_view_created_response

from esign.plone.database import DatabaseUnavailableView, database_guard

UNAVAILABLE = "Tjänsten är tillfälligt otillgänglig. Försök igen om en stund."
LOST = "server closed the connection unexpectedly"


@pytest.mark.parametrize("accept", ["application/json", "text/html,application/xhtml+xml,*/*;q=0.8"])
def test_a_connection_lost_inside_a_request_answers_503_in_swedish_as_page_or_json(portal, accept):
    request = portal.REQUEST
    request.environ["HTTP_ACCEPT"] = accept
    request["PARENTS"] = [portal]
    response = request.response

    assert _exc_view_created_response(psycopg2.OperationalError(LOST), request, response)

    assert response.getStatus() == 503
    assert int(response.getHeader("Retry-After")) > 0
    body = response.body.decode("utf-8")
    if accept == "application/json":
        assert json.loads(body) == {"error": {"type": "DatabaseUnavailable", "message": UNAVAILABLE}}
    else:
        assert response.getHeader("Content-Type").startswith("text/html")
        assert UNAVAILABLE in body and LOST not in body and "Traceback" not in body


def test_other_errors_keep_plones_error_page(portal):
    from zope.component import queryMultiAdapter

    view = queryMultiAdapter((ValueError("x"), portal.REQUEST), name="index.html")
    assert view is not None and not isinstance(view, DatabaseUnavailableView)
    assert isinstance(
        queryMultiAdapter(
            (psycopg2.InterfaceError("connection already closed"), portal.REQUEST), name="index.html"
        ),
        DatabaseUnavailableView,
    )


def _call(app, accept: str = "") -> tuple[str, dict, bytes]:
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app({"PATH_INFO": "/Plone/@@esign-review", "HTTP_ACCEPT": accept}, start_response))
    return seen["status"], seen["headers"], body


def test_a_database_refusing_connections_before_zope_publishes_answers_503_not_500():
    def zope(environ, start_response):  # as publish_module when load_app cannot open the database
        raise psycopg2.OperationalError(
            'connection to server at "127.0.0.1", port 5432 failed: Connection refused'
        )

    status, headers, body = _call(database_guard(zope), "application/json")
    assert status.startswith("503") and int(headers["Retry-After"]) > 0
    assert json.loads(body) == {"error": {"type": "DatabaseUnavailable", "message": UNAVAILABLE}}

    status, headers, body = _call(database_guard(zope), "text/html")
    assert status.startswith("503") and headers["Content-Type"].startswith("text/html")
    assert UNAVAILABLE in body.decode("utf-8") and "5432" not in body.decode("utf-8")


def test_the_guard_lets_answers_and_other_errors_through():
    def fine(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    assert _call(database_guard(fine)) == ("200 OK", {"Content-Type": "text/plain"}, b"ok")

    def broken(environ, start_response):
        raise ValueError("a bug, not the database")

    with pytest.raises(ValueError):
        _call(database_guard(broken))


def test_a_zope_ini_gets_the_guard_as_a_paste_filter(tmp_path):
    """``runwsgi`` instances: ``use = egg:esign.plone#database_guard`` in a pipeline."""
    from paste.deploy import loadapp

    (tmp_path / "zope.ini").write_text(
        "[filter:esign_database]\nuse = egg:esign.plone#database_guard\n\n"
        f"[app:zope]\npaste.app_factory = {__name__}:refusing_app_factory\n\n"
        "[pipeline:main]\npipeline = esign_database zope\n"
    )
    app = loadapp(f"config:{tmp_path / 'zope.ini'}")
    status, _headers, body = _call(app, "application/json")
    assert status.startswith("503")
    assert json.loads(body)["error"]["type"] == "DatabaseUnavailable"


def refusing_app_factory(global_conf, **local_conf):
    def zope(environ, start_response):
        raise psycopg2.OperationalError("connection refused")

    return zope


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_a_conflict_zope_gave_up_retrying_answers_503_without_object_ids(portal, accept):
    from ZODB.POSException import ConflictError
    from ZODB.utils import p64

    request = portal.REQUEST
    request.environ["HTTP_ACCEPT"] = accept
    request["PARENTS"] = [portal]
    response = request.response
    conflict = ConflictError(oid=p64(0x2115), serials=(p64(2), p64(1)))
    assert "0x2115" in str(conflict)

    assert _exc_view_created_response(conflict, request, response)

    assert response.getStatus() == 503 and int(response.getHeader("Retry-After")) > 0
    body = response.body.decode("utf-8")
    assert "0x2115" not in body and "Traceback" not in body
    if accept == "application/json":
        error = json.loads(body)["error"]
        assert error["type"] == "DatabaseBusy" and "Försök igen" in error["message"]
    else:
        assert "Ingenting ändrades" in body
