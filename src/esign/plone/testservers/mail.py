"""A local mail catcher: a real SMTP server that keeps every mail as a file, and a page to read them.

For development (``esign-mail-catcher``, point Plone's SMTP settings at it) and
for tests, where the mail path must be the production one: MailHost, the
queue, ``smtplib`` and an SMTP conversation on a socket.

To try a bounce, give a prefix of local parts to refuse (``--reject-prefix
reject``, ``MailCatcher(..., reject_prefix="reject")``, or set the attribute
``reject_prefix`` of a running catcher): a recipient such as
``reject-bertil@example.se`` is then refused permanently at ``RCPT TO`` with
``550 5.1.1 Mailbox unavailable``, and no mail to it is kept.
"""

from __future__ import annotations

import argparse
import email.policy
import html
import itertools
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller

__all__ = ["MailCatcher", "main"]

_NAME = re.compile(r"^[0-9]{20}-[0-9a-f]{32}\.eml$")
_URL = re.compile(r"https?://[^\s<>\"']+")
_counter = itertools.count()


class _Store:
    """The directory of ``.eml`` files; file names sort by arrival."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    def add(self, content: bytes) -> Path:
        # Nanoseconds plus a counter keep the order of two mails in the same tick.
        stamp = f"{time.time_ns():019d}{next(_counter) % 10}"
        target = self.directory / f"{stamp}-{uuid.uuid4().hex}.eml"
        partial = target.with_suffix(".part")
        partial.write_bytes(content)
        # Readers never see half a mail: the name appears when the file is whole.
        os.replace(partial, target)
        return target

    def names(self) -> list[str]:
        return sorted(p.name for p in self.directory.iterdir() if _NAME.match(p.name))

    def read(self, name: str) -> EmailMessage:
        if not _NAME.match(name):
            raise KeyError(name)
        path = self.directory / name
        if not path.is_file():
            raise KeyError(name)
        with path.open("rb") as fh:
            return BytesParser(policy=email.policy.default).parse(fh)

    def raw(self, name: str) -> bytes:
        if not _NAME.match(name) or not (self.directory / name).is_file():
            raise KeyError(name)
        return (self.directory / name).read_bytes()


#: The answer to a recipient the catcher refuses.
REJECT_REPLY = "550 5.1.1 Mailbox unavailable"


class _Handler:
    """aiosmtpd handler: accept every mail (but refused recipients) and store it as it came."""

    def __init__(self, store: _Store, catcher: MailCatcher) -> None:
        self.store = store
        self.catcher = catcher

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        prefix = self.catcher.reject_prefix
        if prefix and address.partition("@")[0].lower().startswith(prefix.lower()):
            return REJECT_REPLY
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.store.add(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """An aiosmtpd controller that may bind port 0 and then knows its real port."""

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class MailCatcher:
    """A local SMTP server that stores mails as ``.eml`` files and shows them on a web page.

    :param directory: where the mails go, one ``.eml`` file each.
    :param host: the loopback address to listen on.
    :param smtp_port: ``0`` picks a free port; the catcher keeps it across ``stop()``/``start()``.
    :param http_port: ``0`` picks a free port.
    :param reject_prefix: refuse (``550 5.1.1``) every recipient whose local part starts with it.

    Example::

        with MailCatcher(tmp_path) as catcher:
            smtplib.SMTP("127.0.0.1", catcher.smtp_port).sendmail(...)
            mail = catcher.wait_for(lambda m: m["To"] == "anna@example.se")
    """

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        smtp_port: int = 0,
        http_port: int = 0,
        reject_prefix: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.reject_prefix = reject_prefix
        self.host = host
        self.smtp_port = smtp_port
        self.http_port = http_port
        self._store = _Store(self.directory)
        self._controller: _Controller | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> MailCatcher:
        if self._controller is None:
            controller = _Controller(_Handler(self._store, self), hostname=self.host, port=self.smtp_port)
            controller.start()
            self._controller = controller
            self.smtp_port = controller.port
        if self._http is None:
            self._http = ThreadingHTTPServer((self.host, self.http_port), _page_handler(self._store))
            self.http_port = self._http.server_address[1]
            self._http_thread = threading.Thread(
                target=self._http.serve_forever, name="mail-catcher-http", daemon=True
            )
            self._http_thread.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
            self._http_thread = None

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- reading ------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}/"

    def messages(self) -> list[EmailMessage]:
        """Every mail caught so far, oldest first."""
        return [self._store.read(name) for name in self._store.names()]

    def wait_for(self, predicate: Callable[[EmailMessage], bool], timeout: float = 10) -> EmailMessage:
        """Return the first mail that satisfies ``predicate``, waiting up to ``timeout`` seconds.

        :raises TimeoutError: when no such mail arrives in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages():
                if predicate(message):
                    return message
            if time.monotonic() >= deadline:
                raise TimeoutError(f"No matching mail in {self.directory} within {timeout} s")
            time.sleep(0.05)


# -- the web page ----------------------------------------------------------------

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem}"
    "table{border-collapse:collapse;width:100%}td,th{padding:.3rem .6rem;border-bottom:1px solid #ddd;"
    "text-align:left}pre{white-space:pre-wrap;background:#f6f6f6;padding:1rem}"
    "iframe{width:100%;height:36rem;border:1px solid #ccc}"
)


def _page(title: str, body: str) -> bytes:
    return (
        f'<!DOCTYPE html><html lang="sv"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    ).encode()


def _linkify(text: str) -> str:
    escaped = html.escape(text)
    return _URL.sub(lambda m: f'<a href="{m.group(0)}" rel="noopener">{m.group(0)}</a>', escaped)


def _index(store: _Store) -> bytes:
    rows = []
    for name in reversed(store.names()):
        message = store.read(name)
        rows.append(
            "<tr>"
            f"<td>{html.escape(str(message['Date'] or ''))}</td>"
            f"<td>{html.escape(str(message['To'] or ''))}</td>"
            f'<td><a href="/m/{name}">{html.escape(str(message["Subject"] or "(inget ämne)"))}</a></td>'
            "</tr>"
        )
    table = (
        "<table><thead><tr><th>Datum</th><th>Till</th><th>Ämne</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>Inga mejl ännu.</p>"
    )
    return _page("E-post (lokal)", f"<h1>E-post (lokal)</h1><p>{len(rows)} mejl.</p>{table}")


def _detail(store: _Store, name: str) -> bytes:
    message = store.read(name)
    headers = "".join(
        f"<tr><th>{label}</th><td>{html.escape(str(message[key] or ''))}</td></tr>"
        for label, key in (("Från", "From"), ("Till", "To"), ("Datum", "Date"), ("Ämne", "Subject"))
    )
    parts = []
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    if html_part is not None:
        # The mail's HTML runs in a sandbox without scripts; links open outside it.
        parts.append(
            '<h2>HTML</h2><iframe sandbox="allow-popups allow-popups-to-escape-sandbox" '
            f'srcdoc="{html.escape("<base target=_blank>" + html_part.get_content())}"></iframe>'
        )
    if text_part is not None:
        parts.append(f"<h2>Text</h2><pre>{_linkify(text_part.get_content())}</pre>")
    body = (
        f'<p><a href="/">← Alla mejl</a> · <a href="/raw/{name}">Källa (.eml)</a></p>'
        f"<h1>{html.escape(str(message['Subject'] or '(inget ämne)'))}</h1>"
        f"<table>{headers}</table>{''.join(parts)}"
    )
    return _page(str(message["Subject"] or "E-post (lokal)"), body)


def _page_handler(store: _Store) -> type[BaseHTTPRequestHandler]:
    class PageHandler(BaseHTTPRequestHandler):
        server_version = "esign-mail-catcher"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/":
                    self._reply(_index(store), "text/html; charset=utf-8")
                elif path.startswith("/m/"):
                    self._reply(_detail(store, path[3:]), "text/html; charset=utf-8")
                elif path.startswith("/raw/"):
                    self._reply(store.raw(path[5:]), "message/rfc822")
                else:
                    raise KeyError(path)
            except KeyError:
                self._reply(_page("Saknas", "<h1>Mejlet finns inte</h1>"), "text/html; charset=utf-8", 404)

        def _reply(self, body: bytes, content_type: str, status: int = HTTPStatus.OK) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", "script-src 'none'")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:
            pass

    return PageHandler


# -- console script ---------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="esign-mail-catcher", description="Catch outgoing mail locally and show it on a web page."
    )
    parser.add_argument("--dir", default="var/mail", type=Path, help="where mails are kept (var/mail)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--smtp-port", default=8025, type=int, help="SMTP port, 0 for any free one (8025)")
    parser.add_argument("--http-port", default=8026, type=int, help="web page port, 0 for any (8026)")
    parser.add_argument(
        "--reject-prefix",
        metavar="PREFIX",
        help="refuse recipients whose local part starts with PREFIX (e.g. reject): "
        "550 5.1.1 Mailbox unavailable, to try bounces",
    )
    args = parser.parse_args(argv)

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())

    with MailCatcher(
        args.dir,
        host=args.host,
        smtp_port=args.smtp_port,
        http_port=args.http_port,
        reject_prefix=args.reject_prefix,
    ) as catcher:
        print(
            f"SMTP: {catcher.host}:{catcher.smtp_port}\n"
            f"E-post (lokal): {catcher.http_url}\n"
            f"Mejlen sparas i {catcher.directory.resolve()}",
            flush=True,
        )
        stopping.wait()


if __name__ == "__main__":
    main()
