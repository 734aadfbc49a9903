"""What differs between SQLite and Postgres, in one small strategy per database.

Everything else in the store is written once for both. A strategy says how to make an engine
(SQLite: WAL, busy timeout, ``BEGIN IMMEDIATE`` for writers; Postgres: a lock timeout), how an
append reaches the database (SQLite: the driver directly; Postgres: lock, insert and the run's
row in one pipelined round trip), how to insert a row if absent, how to serialise schema
migrations, and whether opening an older schema may upgrade it (SQLite, a file of one user:
yes; Postgres, shared by many workers: only ``kitchen db upgrade``).

The store's modules depend one way: ``_append`` (the rows and their hash chain) uses a
strategy, a strategy uses ``_sql`` (the statements' text), and ``_sql`` uses neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine

from kitchen.errors import ConcurrencyConflict

from . import _sql

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_LOCK_TIMEOUT = "30s"
_PG_MIGRATION_LOCK = 0x6B697463  # "kitc": one advisory lock for schema upgrades


class SQLite:
    name = "sqlite"
    upgrades_on_open = True

    def create_engine(self, url: URL) -> Engine:
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"isolation_level": None})
        event.listen(engine, "connect", _sqlite_settings)
        event.listen(engine, "begin", _sqlite_begin)
        return engine

    def execute(self, conn: sa.Connection, sql: str, params: Sequence[Any]) -> Iterable[Any]:
        """Straight to the driver: there is no connection to lose, and its errors
        (``sqlite3.Error``) are translated like SQLAlchemy's."""
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        return dbapi.execute(sql, params).fetchall()

    def write(
        self,
        conn: sa.Connection,
        rows: list[dict[str, Any]],
        run_row: dict[str, Any],
        expected: int,
    ) -> dict[int, int]:
        """Insert the events, then insert (``expected`` 0) or update the run's row with
        ``run_row``; seq -> position of the inserted events."""
        positions = insert_rows(conn, rows)
        check_count(rows, positions, expected)
        dialect = conn.dialect
        columns = tuple(run_row)
        if expected == 0:
            execute(conn, _sql.insert_run(dialect, columns), _sql.values(dialect, run_row, columns))
        else:
            params = (*_sql.values(dialect, run_row, columns), rows[0]["run_id"])
            execute(conn, _sql.update_run(dialect, columns), params)
        return positions

    def insert_if_absent(
        self, conn: sa.Connection, table: sa.Table, values: dict[str, Any]
    ) -> bool:
        from sqlalchemy.dialects import sqlite

        return _inserted(conn, sqlite.insert(table).values(**values), table)

    def lock_migrations(self, conn: sa.Connection) -> None:
        """Nothing to do: the migration's ``BEGIN IMMEDIATE`` already holds the write lock."""


class Postgres:
    name = "postgresql"
    upgrades_on_open = False

    def create_engine(self, url: URL) -> Engine:
        options = f"-c lock_timeout={POSTGRES_LOCK_TIMEOUT}"
        if url.query.get("options"):
            options = f"{url.query['options']} {options}"
        return sa.create_engine(url.update_query_dict({"options": options}))

    def execute(self, conn: sa.Connection, sql: str, params: Sequence[Any]) -> Iterable[Any]:
        """Through ``exec_driver_sql``, so that a dropped connection is recognised and the
        pool invalidated."""
        result = conn.exec_driver_sql(sql, tuple(params))
        return result.all() if result.returns_rows else []

    def write(
        self,
        conn: sa.Connection,
        rows: list[dict[str, Any]],
        run_row: dict[str, Any],
        expected: int,
    ) -> dict[int, int]:
        """The log's lock, the run's row and the events in one round trip.

        BEGIN (sent by the driver), ``LOCK TABLE events``, the INSERT of a new run's row, and
        one statement that inserts the events and updates the run's row (``_sql.pg_append``)
        travel together in a pipeline; the commit is the only other round trip.
        """
        dialect = conn.dialect
        params: list[Any] = _sql.pg_event_arrays(rows)
        statements: list[tuple[str, Any]] = [(_sql.LOCK_LOG, None)]
        columns: tuple[str, ...] = ()
        if expected == 0:
            full = tuple(run_row)
            statements.append((_sql.insert_run(dialect, full), _sql.values(dialect, run_row, full)))
        else:
            columns = tuple(run_row)
            params += [*_sql.values(dialect, run_row, columns), rows[0]["run_id"]]
        statements.append((_sql.pg_append(columns), params))
        positions = {int(seq): int(pos) for seq, pos in _sql.pg_pipeline(conn, statements)}
        check_count(rows, positions, expected)
        return positions

    def insert_if_absent(
        self, conn: sa.Connection, table: sa.Table, values: dict[str, Any]
    ) -> bool:
        from sqlalchemy.dialects import postgresql

        return _inserted(conn, postgresql.insert(table).values(**values), table)

    def lock_migrations(self, conn: sa.Connection) -> None:
        """Many workers may open an empty database at once: one upgrades, the others wait."""
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})


Strategy = SQLite | Postgres
_STRATEGIES: dict[str, Strategy] = {"sqlite": SQLite(), "postgresql": Postgres()}


def for_name(name: str) -> Strategy:
    """The strategy of a backend name (``sqlite``, ``postgresql``)."""
    return _STRATEGIES[name]


def of(conn: sa.Connection | Engine) -> Strategy:
    return _STRATEGIES[conn.dialect.name]


def execute(conn: sa.Connection, sql: str, params: Sequence[Any]) -> Iterable[Sequence[Any]]:
    """Run one statement of the hot path, the way its database's strategy says; its rows."""
    return of(conn).execute(conn, sql, params)


def insert_rows(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """Insert event rows; returns seq -> position of those that were inserted."""
    positions: dict[int, int] = {}
    for start in range(0, len(rows), _sql.CHUNK_ROWS):
        chunk = rows[start : start + _sql.CHUNK_ROWS]
        sql = _sql.insert_events(conn.dialect, len(chunk))
        for seq, position in execute(conn, sql, _sql.event_params(conn.dialect, chunk)):
            positions[seq] = position
    return positions


def check_count(rows: list[dict[str, Any]], positions: dict[int, int], expected_seq: int) -> None:
    """Fewer events inserted than given: another writer took one of their seqs."""
    if len(positions) != len(rows):
        raise ConcurrencyConflict(
            f"run {rows[0]['run_id']!r} moved on: seq {expected_seq + 1} was already taken by "
            "another writer; reload the run and retry from its last seq"
        )


def _inserted(conn: sa.Connection, stmt: Any, table: sa.Table) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True if it inserted (RETURNING, not rowcount:
    psycopg reports -1 for a skipped INSERT ... ON CONFLICT)."""
    return conn.execute(stmt.on_conflict_do_nothing().returning(table.c.run_id)).first() is not None


def _sqlite_settings(dbapi_conn: Any, _record: Any) -> None:
    """WAL, a generous busy timeout, and ``synchronous=NORMAL``.

    WAL lets readers run beside the one writer. The busy timeout makes concurrent writers
    queue instead of failing. ``synchronous=NORMAL`` in WAL mode syncs only at checkpoints:
    a killed process loses nothing that was committed (the WAL is in the OS cache), but a
    power loss or kernel crash can lose the last transactions committed since the previous
    checkpoint. The database itself is never corrupted. The runner commits before every side
    effect it cannot redo, so a lost tail is work that resume redoes.
    """
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
    finally:
        cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    """Open transactions ourselves: ``BEGIN IMMEDIATE`` for writers, so that they take the
    write lock up front and wait on busy_timeout, instead of failing with SQLITE_BUSY when a
    read lock cannot be upgraded."""
    mode = conn.get_execution_options().get("kitchen_begin", "DEFERRED")
    # straight to the driver: this runs on every transaction, and the SQLAlchemy execution
    # path would double its cost (a driver error here is translated like any other)
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    dbapi.execute(f"BEGIN {mode}")
