"""Fixtures of the BankID tests: the project's own RP API v6.0 test server on real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esign.plone.identity.bankid import BankIDClient, BankIDConfig
from esign.plone.testservers.bankid import BankIDTestServer


@pytest.fixture(scope="session")
def bankid_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One test PKI for the session; every server after the first reuses it."""
    return tmp_path_factory.mktemp("bankid-test")


@pytest.fixture
def bankid_server(bankid_dir: Path) -> Iterator[BankIDTestServer]:
    with BankIDTestServer(bankid_dir) as server:
        yield server


@pytest.fixture
def bankid_config(bankid_server: BankIDTestServer) -> BankIDConfig:
    paths = bankid_server.paths
    return BankIDConfig(
        url=bankid_server.api_url,
        cert_path=str(paths["rp_cert"]),
        key_path=str(paths["rp_key"]),
        ca_path=str(paths["ca"]),
        timeout=5.0,
    )


@pytest.fixture
def bankid(bankid_config: BankIDConfig) -> BankIDClient:
    return BankIDClient(bankid_config)
