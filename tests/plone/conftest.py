"""Fixtures for tests that need a Plone site with esign.plone installed."""

from __future__ import annotations

import datetime as dt
import os
import tempfile

# The site PKI's CA keys go to files, never into the ZODB: give this test run
# its own folder for them, as an instance's var/ would be.
os.environ.setdefault("ESIGN_PKI_DIR", tempfile.mkdtemp(prefix="esign-pki-"))

# Mail goes, as in production, through MailHost's queue to a real SMTP server:
# the project's mail catcher, on a free port, for the whole test session.
from pathlib import Path

from esign.plone.testservers.mail import MailCatcher

MAIL = MailCatcher(Path(tempfile.mkdtemp(prefix="esign-mail-"))).start()
os.environ["ESIGN_SMTP_HOST"] = "127.0.0.1"
os.environ["ESIGN_SMTP_PORT"] = str(MAIL.smtp_port)
os.environ.setdefault("ESIGN_MAIL_QUEUE", tempfile.mkdtemp(prefix="esign-mailqueue-"))

import pytest
from plone import api
from plone.app.testing import TEST_USER_ID, setRoles
from plone.namedfile.file import NamedBlobFile
from pytest_plone import fixtures_factory

from esign.plone.signing.values import AuthenticationContext, VerifiedIdentity
from esign.plone.testing import ESIGN_FUNCTIONAL_TESTING, ESIGN_INTEGRATION_TESTING

globals().update(
    fixtures_factory(
        (
            (ESIGN_INTEGRATION_TESTING, "integration"),
            (ESIGN_FUNCTIONAL_TESTING, "functional"),
        )
    )
)

ANNA = {"name": "Anna Andersson", "personal_number": "191212121212", "email": "anna@example.se"}
BERTIL = {"name": "Bertil Berg", "personal_number": "194911172296", "email": "bertil@example.se"}
STAFF = {"name": "Sara Sjuksköterska", "hsa_id": "SE2321000016-1003", "email": "sara@regionen.se"}


def identity_of(row: dict, *, method: str = "bankid") -> VerifiedIdentity:
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


@pytest.fixture()
def pdf_bytes() -> bytes:
    import io

    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    page.drawString(72, 760, "Avtal om vårdtjänster mellan Regionen och Vårdgivaren AB")
    page.showPage()
    page.save()
    return buffer.getvalue()


@pytest.fixture()
def officer(portal):
    """A handläggare: a member with the SigningOfficer role, logged in."""
    user = api.user.create(email="officer@example.se", username="officer", password="officer-secret-1")
    api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    return user


@pytest.fixture()
def make_case(portal, pdf_bytes):
    """Create a signing case as the logged-in user; returns a factory."""

    def factory(*, signers=(ANNA, BERTIL), container=None, data: bytes | None = None, **fields):
        fields.setdefault("information_class", "K2")
        case = api.content.create(
            container=container or portal,
            type="SigningCase",
            title=fields.pop("title", "Avtal om vårdtjänster"),
            document=NamedBlobFile(data or pdf_bytes, filename="avtal.pdf", contentType="application/pdf"),
            signers=[dict(s) for s in signers],
            **fields,
        )
        return case

    return factory


@pytest.fixture()
def as_manager(portal):
    setRoles(portal, TEST_USER_ID, ["Manager"])
    yield
    setRoles(portal, TEST_USER_ID, ["Member"])
