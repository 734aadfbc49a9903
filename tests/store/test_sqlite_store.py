"""The event store contract on SQLite (a fresh file per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kitchen.store import EventStore, open_store
from kitchen.testing.store_contract import EventStoreContract


class TestSQLiteStore(EventStoreContract):
    __test__ = True

    @pytest.fixture
    def store(self, sqlite_url: str) -> Iterator[EventStore]:
        store = open_store(sqlite_url)
        yield store
        store.close()
