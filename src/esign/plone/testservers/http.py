"""What the project's test servers share: a quiet HTTP/1.1 handler that sends whole bodies."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler
from typing import Any

logger = logging.getLogger("esign.plone.testservers")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # Requests are logged at debug level: a tester's terminal shows the server's own lines only.
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
