"""Faults on demand: a proxy that stands between the site and a service it depends on.

:class:`FaultProxy` listens on a free loopback port (plain HTTP, or HTTPS with the
upstream's own server certificate and, for BankID, the same demand for a client
certificate) and forwards each request to the real service, unless a rule says
otherwise. A test points the site at the proxy (``esign.tsa_url``,
``ESIGN_BANKID_URL``) and then breaks the service the way networks and vendors do::

    with FaultProxy("http://127.0.0.1:8000") as proxy:
        proxy.inject(Fault.answer(500, b"boom"))               # every request
        proxy.inject(Fault.delay(30), path="/collect", after=1)  # the second collect on
        proxy.refuse()                                         # connection refused
        proxy.restore()                                        # listening again, same port
        proxy.heal()                                           # forward everything again

Rules are tried in the order given; the first whose ``path`` the request's path ends
with decides. ``after`` lets that many matching requests through first, ``times``
limits how often the rule fires. :attr:`FaultProxy.log` says what happened to each
request, so a test can check that the fault it meant was the one that struck.

``python tests/helpers/faults.py serve <home> --port P --port-file F --signer JSON --tsa-url U``
runs a real Zope instance (FileStorage in ``<home>/var``) as a process of its own, for
the test that kills one with SIGKILL; see :func:`serve`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

FaultKind = Literal["answer", "delay", "cut", "hang"]

_MAX_BODY = 2_000_000
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class Fault:
    """What the proxy does instead of (or before) forwarding one request."""

    #: ``answer``: reply ``status`` with ``body``; ``delay``: wait ``seconds``, then forward;
    #: ``hang``: wait ``seconds``, then close without a word; ``cut``: close at once.
    kind: FaultKind
    status: int = 0
    body: bytes = b""
    content_type: str = "text/plain"
    seconds: float = 0.0

    @classmethod
    def answer(cls, status: int, body: bytes = b"", *, content_type: str = "text/plain") -> Fault:
        return cls("answer", status=status, body=body, content_type=content_type)

    @classmethod
    def bankid_error(cls, status: int, error_code: str, details: str = "") -> Fault:
        """An RP API error answer as BankID sends them: ``{"errorCode", "details"}``."""
        body = json.dumps({"errorCode": error_code, "details": details or error_code}).encode()
        return cls.answer(status, body, content_type="application/json")

    @classmethod
    def garbage(cls, content_type: str) -> Fault:
        """``200 OK`` with the right content type and bytes that are no such thing."""
        return cls.answer(
            200, b"\x30\x82\xff\xffnot DER, not JSON, not anything" * 4, content_type=content_type
        )

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        return cls("delay", seconds=seconds)

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        return cls("hang", seconds=seconds)

    @classmethod
    def cut(cls) -> Fault:
        return cls("cut")


@dataclass
class _Rule:
    fault: Fault
    path: str
    after: int
    times: int | None
    seen: int = 0
    fired: int = 0

    def claims(self, path: str) -> bool:
        """Whether this rule decides the request (counts it either way when the path matches)."""
        if not path.endswith(self.path):
            return False
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


@dataclass(frozen=True)
class Passage:
    """One request through the proxy: its path and what became of it (``forwarded`` or a fault kind)."""

    method: str
    path: str
    outcome: str
    at: float = field(default_factory=time.monotonic)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args) -> None:
        pass

    def _any(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, _MAX_BODY)) if length else b""
        path = self.path.split("?", 1)[0]
        fault = proxy._fault_for(path)
        proxy._note(self.command, path, "forwarded" if fault is None else fault.kind)
        waits = fault is not None and fault.kind in ("hang", "delay")
        if waits and proxy._stopping.wait(fault.seconds):
            fault = Fault.cut()  # the proxy stops: whoever still waits is cut off
        if fault is not None and fault.kind in ("hang", "cut"):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.kind == "answer":
            self._reply(fault.status, fault.body, {"Content-Type": fault.content_type})
            return
        try:
            status, headers, answer = proxy._forward(self.command, self.path, self.headers, body)
        except OSError:
            self._reply(502, b"upstream unreachable", {"Content-Type": "text/plain"})
            return
        self._reply(status, answer, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client gave up waiting: nothing to tell it


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: FaultProxy, port: int) -> None:
        self.proxy = proxy
        self.open: set[socket.socket] = set()  # kept-alive client connections, cut when it stops
        self.open_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def finish_request(self, request, client_address) -> None:
        context = self.proxy._server_context
        if context is None:
            self._serve(request, client_address)
            return
        request.settimeout(30)
        try:
            tls = context.wrap_socket(request, server_side=True)  # takes the socket over
        except (ssl.SSLError, OSError):
            return
        try:
            self._serve(tls, client_address)
        finally:
            tls.close()

    def _serve(self, connection, client_address) -> None:
        with self.open_lock:
            self.open.add(connection)
        try:
            super().finish_request(connection, client_address)
        finally:
            with self.open_lock:
                self.open.discard(connection)

    def cut_open_connections(self) -> None:
        """As a server that goes away does: every connection still open is reset."""
        with self.open_lock:
            for connection in self.open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address) -> None:
        pass  # a cut or a client that gave up is what these tests are about


class FaultProxy:
    """A forwarding proxy on 127.0.0.1 whose answers a test can break.

    :param upstream: base URL of the real service (``http://…`` or ``https://…``); the
        request's path is forwarded unchanged.
    :param server_cert: PEM certificate and ``server_key`` for HTTPS towards the client
        (the upstream's own, so the client's pinned CA still trusts the proxy).
    :param client_ca: when given, clients must present a certificate issued by it (mutual TLS).
    :param upstream_ca: the CA the upstream's certificate must chain to; ``upstream_cert``
        and ``upstream_key`` are presented to it (the relying party's client certificate).
    :param host_name: the name in :attr:`url` (``localhost`` when the certificate names it).
    """

    def __init__(
        self,
        upstream: str,
        *,
        server_cert: Path | None = None,
        server_key: Path | None = None,
        client_ca: Path | None = None,
        upstream_ca: Path | None = None,
        upstream_cert: Path | None = None,
        upstream_key: Path | None = None,
        host_name: str = "127.0.0.1",
    ) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.scheme, parts.hostname or "127.0.0.1", parts.port)
        self._server_context: ssl.SSLContext | None = None
        if server_cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(server_cert, server_key)
            if client_ca is not None:
                context.load_verify_locations(client_ca)
                context.verify_mode = ssl.CERT_REQUIRED
            self._server_context = context
        self._upstream_context: ssl.SSLContext | None = None
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=str(upstream_ca) if upstream_ca else None)
            if upstream_cert is not None:
                context.load_cert_chain(upstream_cert, upstream_key)
            self._upstream_context = context
        self.host_name = host_name
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._log: list[Passage] = []
        self._stopping = threading.Event()
        self._port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life -----------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._stopping.clear()
        self._server = _Server(self, self._port)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and wake every request held by a delay or hang (they are cut)."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.cut_open_connections()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def refuse(self) -> None:
        """Connection refused from now on: nothing listens on the port any more."""
        self.stop()

    def restore(self) -> None:
        """Listen again, on the same port."""
        if self._server is None:
            self.start()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``http(s)://<host_name>:<port>``, no trailing slash."""
        scheme = "https" if self._server_context is not None else "http"
        return f"{scheme}://{self.host_name}:{self._port}"

    # -- faults -----------------------------------------------------------------------

    def inject(self, fault: Fault, *, path: str = "", after: int = 0, times: int | None = None) -> None:
        """Add a rule: requests whose path ends with ``path`` meet ``fault``.

        :param after: let this many matching requests through first.
        :param times: fire at most this often (then the next rule, or forwarding, decides).
        """
        with self._lock:
            self._rules.append(_Rule(fault, path, after, times))

    def heal(self) -> None:
        """Forget every rule: forward everything again."""
        with self._lock:
            self._rules.clear()

    @property
    def log(self) -> list[Passage]:
        with self._lock:
            return list(self._log)

    def outcomes(self, path: str = "") -> list[str]:
        """What became of each request whose path ends with ``path``, in order."""
        return [p.outcome for p in self.log if p.path.endswith(path)]

    def wait_for(self, path: str, *, outcome: str | None = None, timeout: float = 15) -> Passage:
        """The first request to ``path`` (with ``outcome``), waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for passage in self.log:
                if passage.path.endswith(path) and (outcome is None or passage.outcome == outcome):
                    return passage
            time.sleep(0.02)
        raise AssertionError(f"no request to {path} ({outcome or 'any'}) within {timeout} s: {self.log}")

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.claims(path):
                    return rule.fault
        return None

    def _note(self, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self._log.append(Passage(method, path, outcome))

    def _forward(self, method: str, target: str, headers, body: bytes) -> tuple[int, dict[str, str], bytes]:
        scheme, host, port = self._upstream
        if scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=60, context=self._upstream_context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=60)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(method, target, body=body or None, headers=sent)
            response = connection.getresponse()
            answer = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            return response.status, kept, answer
        finally:
            connection.close()


def bankid_proxy(server) -> FaultProxy:
    """A :class:`FaultProxy` in front of a running ``BankIDTestServer``'s RP API.

    It presents the test server's own certificate, demands the relying party's client
    certificate as BankID does, and forwards with that client certificate; its
    ``environment()`` gives the ``ESIGN_BANKID_*`` variables that point the site at it.
    """
    proxy = bankid_proxy_for(server.directory, server.api_url)
    proxy.bankid_environment = server.environment()
    return proxy


def bankid_proxy_for(base: Path, api_url: str) -> _BankIDProxy:
    """A BankID proxy (not started) for the test server whose files are in ``base``."""
    return _BankIDProxy(
        api_url.rsplit("/rp/", 1)[0],
        server_cert=base / "server.pem",
        server_key=base / "server-key.pem",
        client_ca=base / "ca.pem",
        upstream_ca=base / "ca.pem",
        upstream_cert=base / "rp.pem",
        upstream_key=base / "rp-key.pem",
        host_name="localhost",
    )


class _BankIDProxy(FaultProxy):
    bankid_environment: dict[str, str]

    def environment(self) -> dict[str, str]:
        """``ESIGN_BANKID_*`` pointing at the proxy (same client certificate and pinned CA)."""
        return {**self.bankid_environment, "ESIGN_BANKID_URL": f"{self.url}/rp/v6.0"}


# -- a real Zope instance in a process of its own ----------------------------------------------

#: The case the instance makes on its first start, and its one signer.
KILL_CASE_ID = "avtal-kill"
OFFICER = ("officer", "officer-secret-1")


def serve(home: Path, *, port: int, port_file: Path, signer: dict, tsa_url: str) -> None:
    """Run Zope from ``<home>/zope.conf`` and serve it with waitress on ``port`` until killed.

    On the first start (no ``Data.fs`` yet) it makes the site ``Plone`` with esign.plone,
    the officer ``officer`` and the case :data:`KILL_CASE_ID` for ``signer``, sent, with
    the external TSA ``tsa_url``. Writes ``<port>`` to ``port_file`` when it listens.
    The same ``port`` on every start: the certificates name the site's address.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import esign_site
    from demo import ZOPE_CONF  # the zope.conf of a FileStorage instance in ``home``

    (home / "var" / "blobstorage").mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = home / "zope.conf"
    first = not (home / "var" / "Data.fs").exists()
    conf.write_text(ZOPE_CONF.format(home=home), encoding="utf-8")
    app = esign_site.open_zope_app(str(conf))

    import transaction
    import waitress
    from plone import api
    from ZPublisher.WSGIPublisher import publish_module

    server = waitress.create_server(publish_module, host="127.0.0.1", port=port, threads=4)
    app.REQUEST.setServerURL(protocol="http", hostname="127.0.0.1", port=port)
    if first:
        from plone.namedfile.file import NamedBlobFile

        from esign.plone import api as esign

        site, _ = esign_site.ensure_site(app, site_id="Plone")
        esign_site.ensure_installed(site)
        user = api.user.create(email="officer@regionen.se", username=OFFICER[0], password=OFFICER[1])
        api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
        api.portal.set_registry_record("esign.tsa_url", tsa_url)
        with api.env.adopt_user(username=OFFICER[0]):
            case = api.content.create(
                container=site,
                type="SigningCase",
                id=KILL_CASE_ID,
                title="Avtal som signeras när instansen dör",
                information_class="K2",
                document=NamedBlobFile(
                    esign_site.contract_pdf(), filename="avtal.pdf", contentType="application/pdf"
                ),
                signers=[dict(signer)],
            )
            esign.send_case(case)
        transaction.commit()
    transaction.abort()
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(port))
    tmp.rename(port_file)
    server.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A Zope instance for the fault tests.")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("home", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--signer", required=True, help="the signer row as JSON")
    parser.add_argument("--tsa-url", required=True)
    args = parser.parse_args(argv)
    os.chdir(args.home)
    serve(
        args.home,
        port=args.port,
        port_file=args.port_file,
        signer=json.loads(args.signer),
        tsa_url=args.tsa_url,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
