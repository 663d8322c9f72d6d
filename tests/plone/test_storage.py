"""The site-wide stores (links, sessions, login flows) under concurrent writers.

Two transactions that each end a different login flow change the same small BTree bucket;
the ZODB merges them only if neither empties the bucket nor removes its first key. Every
store keeps an anchor entry for that: without it, two signers finishing their logins at the
same moment conflict, and one of them has to do her whole request again.
"""

from __future__ import annotations

import time

import pytest
import transaction
import ZODB
from persistent.mapping import PersistentMapping
from ZODB.FileStorage import FileStorage
from ZODB.POSException import ConflictError

from esign.plone import storage


@pytest.fixture
def database(tmp_path):
    db = ZODB.DB(FileStorage(str(tmp_path / "Data.fs")))
    yield db
    db.close()


def _use(connection, monkeypatch) -> None:
    root = connection.root()
    monkeypatch.setattr(storage, "_stores", lambda: root.setdefault("stores", PersistentMapping()))


def _two_writers(db, monkeypatch, setup, first, second) -> None:
    managers = transaction.TransactionManager(), transaction.TransactionManager()
    one, two = (db.open(transaction_manager=manager) for manager in managers)
    _use(one, monkeypatch)
    setup()
    managers[0].commit()
    two.sync()
    _use(one, monkeypatch)
    first()
    _use(two, monkeypatch)
    second()
    managers[0].commit()
    managers[1].commit()  # raises ConflictError if the ZODB cannot merge the two
    one.close()
    two.close()


def test_two_logins_that_end_at_once_do_not_conflict(database, monkeypatch):
    def setup():
        storage.put("flows", "flow-a", {"expires": time.time() + 60})
        storage.put("flows", "flow-b", {"expires": time.time() + 60})

    _two_writers(
        database,
        monkeypatch,
        setup,
        lambda: storage.delete("flows", "flow-a"),
        lambda: storage.delete("flows", "flow-b"),
    )
    connection = database.open()
    _use(connection, monkeypatch)
    assert storage.get("flows", "flow-a") is None
    assert storage.get("flows", "flow-b") is None
    connection.close()


def test_without_the_anchor_the_same_two_logins_conflict(database, monkeypatch):
    """The case the anchor is for: shows the test above can fail."""

    def setup():
        storage.put("flows", "flow-a", {"expires": time.time() + 60})
        storage.put("flows", "flow-b", {"expires": time.time() + 60})
        del storage.store("flows")[storage.ANCHOR]

    with pytest.raises(ConflictError):
        _two_writers(
            database,
            monkeypatch,
            setup,
            lambda: storage.store("flows").pop(storage.digest("flow-a")),
            lambda: storage.store("flows").pop(storage.digest("flow-b")),
        )


def test_the_anchor_outlives_purges_and_deletes(database, monkeypatch):
    connection = database.open()
    _use(connection, monkeypatch)
    storage.put("links", "token-1", {"case": "uid-1", "expires": 0})
    storage.put("links", "token-2", {"case": "uid-2", "expires": time.time() + 60})
    storage.store("links")[storage.ANCHOR]["expires"] = 0  # as a careless script might
    assert storage.purge_expired("links") == 1
    assert storage.delete_where("links", lambda entry: True) == 1
    assert list(storage.store("links")) == [storage.ANCHOR]
    transaction.abort()
    connection.close()
