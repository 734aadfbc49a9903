"""Dropped Postgres connections: reads retry, appends are settled, nothing is written twice.

The server really kills our backend (``pg_terminate_backend``); the only thing arranged is
*when*, through SQLAlchemy's engine events.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from kitchen.errors import StoreUnavailable
from kitchen.store import EventStore, NewEvent, open_store

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(postgres_url: str) -> Iterator[EventStore]:
    store = open_store(postgres_url)
    yield store
    store.close()


def _kill_backends(store: EventStore) -> None:
    """Terminate every server connection of this store's pool, from outside it."""
    admin = sa.create_engine(store.engine.url, poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = 'kitchen-victim'"
        )
    admin.dispose()


def _victim(store: EventStore) -> None:
    """Tag this store's connections so only they are killed."""
    event.listen(
        store.engine,
        "connect",
        lambda dbapi, _rec: dbapi.execute("SET application_name = 'kitchen-victim'"),
    )
    store.engine.dispose()


def _disconnects(store: EventStore) -> list[bool]:
    """One True per pooled connection thrown away as lost (SQLAlchemy's pool event, fired
    both for statements SQLAlchemy runs and for the append's pipelined ones)."""
    seen: list[bool] = []
    event.listen(store.engine, "invalidate", lambda _dbapi, _rec, _exc: seen.append(True))
    return seen


def _events(n: int) -> list[NewEvent]:
    return [NewEvent("E", {"i": i}) for i in range(n)]


def test_read_survives_a_dropped_connection(store: EventStore) -> None:
    _victim(store)
    store.append("r1", _events(2), 0)
    store.read("r1")  # reads use pooled connections: leave one in the pool to be killed
    _kill_backends(store)
    seen = _disconnects(store)
    assert [e.seq for e in store.read("r1")] == [1, 2]
    assert seen == [True]


def test_append_on_a_dead_pooled_connection_is_retried(store: EventStore) -> None:
    _victim(store)
    store.append("r1", _events(1), 0)
    _kill_backends(store)
    seen = _disconnects(store)
    store.append("r1", _events(2), 1)
    assert seen == [True]
    assert [e.seq for e in store.read("r1")] == [1, 2, 3]
    assert store.verify("r1").ok


def _commit_then_die(store: EventStore) -> list[bool]:
    """At the next commit: commit for real, then lose the connection so that the client's own
    COMMIT fails as if the reply had been lost."""
    fired: list[bool] = []

    def on_commit(conn: sa.Connection) -> None:
        if fired:
            return
        fired.append(True)
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        dbapi.commit()
        dbapi.cursor().execute("SELECT 1")  # opens a transaction for the doomed COMMIT
        _kill_backends(store)

    event.listen(store.engine, "commit", on_commit)
    return _disconnects(store)


def test_committed_append_with_lost_reply_is_not_written_twice(store: EventStore) -> None:
    _victim(store)
    store.append("r1", _events(1), 0)
    lost = _commit_then_die(store)
    written = store.append("r1", _events(3), 1)
    assert lost == [True]  # the client's COMMIT really failed
    assert [e.seq for e in written] == [2, 3, 4]
    assert store.read("r1")[1:] == written
    assert store.verify("r1").ok


def test_unsettled_append_is_settled_by_the_retry(store: EventStore) -> None:
    _victim(store)
    store.append("r1", _events(1), 0)
    lost = _commit_then_die(store)
    down = True

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        if down:
            raise psycopg.OperationalError("server is down")
        return None  # let SQLAlchemy connect as usual

    event.listen(store.engine, "do_connect", refuse)
    with pytest.raises(StoreUnavailable, match="cannot tell if it committed"):
        store.append("r1", _events(2), 1)
    assert lost[0] is True
    down = False
    again = store.append("r1", _events(2), 1)
    assert [e.seq for e in again] == [2, 3]
    assert [e.seq for e in store.read("r1")] == [1, 2, 3]
