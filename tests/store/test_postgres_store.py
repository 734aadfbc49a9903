"""The event store contract on Postgres (a fresh schema per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kitchen.store import EventStore, open_store
from kitchen.testing.store_contract import EventStoreContract

pytestmark = pytest.mark.postgres


class TestPostgresStore(EventStoreContract):
    __test__ = True

    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[EventStore]:
        store = open_store(postgres_url)
        yield store
        store.close()
