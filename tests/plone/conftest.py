"""Fixtures for tests that need a Plone site with esign.plone installed."""

from __future__ import annotations

import pytest
from plone import api
from plone.app.testing import TEST_USER_ID, setRoles
from plone.namedfile.file import NamedBlobFile
from pytest_plone import fixtures_factory

from esign.plone.testing import ESIGN_FUNCTIONAL_TESTING, ESIGN_INTEGRATION_TESTING

# The session's environment (PKI folder, SMTP server) is set by helpers.site
# before Plone is imported; the people and identities the tests use live there too.
from helpers.pdfs import one_page_pdf
from helpers.site import ANNA, BERTIL, MAIL, STAFF, identity_of

globals().update(
    fixtures_factory(
        (
            (ESIGN_INTEGRATION_TESTING, "integration"),
            (ESIGN_FUNCTIONAL_TESTING, "functional"),
        )
    )
)


@pytest.fixture()
def pdf_bytes() -> bytes:
    return one_page_pdf()


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


__all__ = ["ANNA", "BERTIL", "MAIL", "STAFF", "identity_of"]
