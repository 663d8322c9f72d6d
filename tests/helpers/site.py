"""The test session's world: where CA keys and mail go, and the people who sign.

Imported by tests/plone/conftest.py before Plone, so the environment is set
before the add-on reads it; test modules import the people from here (not from
``conftest``, whose module name several folders share).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

# The site PKI's CA keys go to files, never into the ZODB: give this test run
# its own folder for them, as an instance's var/ would be.
os.environ.setdefault("ESIGN_PKI_DIR", tempfile.mkdtemp(prefix="esign-pki-"))

# Every test signer logs in from 127.0.0.1: the BankID rate limit (10 order starts per client
# per 5 minutes by default) would throttle the suite itself. tests/plone/test_rate_limit.py
# sets the rate it tests.
os.environ.setdefault("ESIGN_BANKID_RATE", "10000/300")

# Mail goes, as in production, through MailHost's queue to a real SMTP server:
# the project's mail catcher, on a free port, for the whole test session.
from esign.plone.testservers.mail import MailCatcher

MAIL = MailCatcher(Path(tempfile.mkdtemp(prefix="esign-mail-"))).start()
os.environ["ESIGN_SMTP_HOST"] = "127.0.0.1"
os.environ["ESIGN_SMTP_PORT"] = str(MAIL.smtp_port)
os.environ.setdefault("ESIGN_MAIL_QUEUE", tempfile.mkdtemp(prefix="esign-mailqueue-"))

from esign.plone.signing.values import AuthenticationContext, VerifiedIdentity

ANNA = {"name": "Anna Andersson", "personal_number": "191212121212", "email": "anna@example.se"}
BERTIL = {"name": "Bertil Berg", "personal_number": "194911172296", "email": "bertil@example.se"}
STAFF = {"name": "Sara Sjuksköterska", "hsa_id": "SE2321000016-1003", "email": "sara@regionen.se"}


def identity_of(row: dict, *, method: str = "bankid") -> VerifiedIdentity:
    """An identity as an identity provider would have verified it for ``row``."""
    given, _, surname = row["name"].partition(" ")
    return VerifiedIdentity(
        given_name=given,
        surname=surname,
        personal_number=row.get("personal_number"),
        hsa_id=row.get("hsa_id"),
        email=row.get("email"),
        context=AuthenticationContext(
            method=method,
            identity_provider="https://bankid.test.local/rp/v6.0/",
            authenticated_at=dt.datetime.now(dt.UTC),
            transaction_ref="order-0001",
        ),
    )


def send_new_case(
    container,
    pdf: bytes,
    *,
    officer: str,
    signers,
    title: str | None = None,
    information_class: str = "K2",
    **fields,
):
    """A signing case made and sent by ``officer``, committed (the mails are on their way)."""
    import uuid

    import transaction
    from plone import api
    from plone.namedfile.file import NamedBlobFile

    from esign.plone import api as esign

    with api.env.adopt_user(username=officer):
        case = api.content.create(
            container=container,
            type="SigningCase",
            title=title or f"Avtal {uuid.uuid4().hex[:8]}",
            information_class=information_class,
            document=NamedBlobFile(pdf, filename="avtal.pdf", contentType="application/pdf"),
            signers=[dict(s) for s in signers],
            **fields,
        )
        esign.send_case(case)
    transaction.commit()
    return case
