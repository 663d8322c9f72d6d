"""A real SMTP server for tests: the project's mail catcher on a free loopback port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

from esign.plone.testservers.mail import MailCatcher


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def mail_catcher(directory: Path) -> Iterator[MailCatcher]:
    """A started :class:`MailCatcher` that is stopped afterwards, whatever happened."""
    catcher = MailCatcher(directory, smtp_port=free_port())
    catcher.start()
    try:
        yield catcher
    finally:
        catcher.stop()


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()
