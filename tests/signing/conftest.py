"""Fixtures of the signing-engine tests: a site PKI, test documents, verified people."""

from __future__ import annotations

from pathlib import Path

import pytest

from esign.plone.signing import SitePKI, VerifiedIdentity
from helpers.pdfs import TestDocuments
from helpers.people import ORGANISATION, PASSPHRASE, make_identity


@pytest.fixture(scope="session")
def documents(tmp_path_factory: pytest.TempPathFactory) -> TestDocuments:
    return TestDocuments(tmp_path_factory.mktemp("documents"))


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("site") / "pki"
    SitePKI.create(directory, passphrase=PASSPHRASE, organisation=ORGANISATION)
    return directory


@pytest.fixture(scope="session")
def pki(pki_dir: Path) -> SitePKI:
    return SitePKI.load(pki_dir, passphrase=PASSPHRASE)


@pytest.fixture(scope="session")
def tolvan() -> VerifiedIdentity:
    return make_identity("Tolvan", "Tolvansson", "191212121212", email="tolvan@example.se")


@pytest.fixture(scope="session")
def agda() -> VerifiedIdentity:
    return make_identity("Agda", "Andersson", "194911172296", transaction_ref="order-ref-2")
