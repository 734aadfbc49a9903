"""The append's statements as plain SQL text, built once per shape and cached.

SQLAlchemy Core costs about 0.1 ms per statement to key, look up and wrap; an append is two
statements, and the runner makes a dozen appends' worth of events every training step. So
the hot path hands the driver ready-made SQL through ``exec_driver_sql`` (which still turns
driver errors into SQLAlchemy's, so disconnects are still recognised). Table and column names
come from ``schema.py``; timestamps pass through the same type as everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from .schema import UTCDateTime, events, runs

EVENT_COLUMNS = tuple(c.name for c in events.columns if c.name != "position")
CHUNK_ROWS = 500  # stays far below SQLite's limit on bound parameters per statement
_TIMESTAMPS = frozenset({"recorded_at", "created_at", "updated_at"})


def _mark(dialect: Dialect) -> str:
    return "?" if dialect.paramstyle == "qmark" else "%s"


@cache
def insert_events(dialect: Dialect, n: int) -> str:
    """INSERT n rows ... ON CONFLICT (run_id, seq) DO NOTHING RETURNING seq, position.

    The UNIQUE constraint still decides every conflict; skipping instead of failing makes a
    lost race a short row count rather than a server-side error unwound through the driver,
    which under contention costs more than a successful append.
    """
    row = "(" + ", ".join([_mark(dialect)] * len(EVENT_COLUMNS)) + ")"
    return (
        f"INSERT INTO {events.name} ({', '.join(EVENT_COLUMNS)}) VALUES "
        + ", ".join([row] * n)
        + " ON CONFLICT (run_id, seq) DO NOTHING RETURNING seq, position"
    )


def _pg_array_type(column: sa.Column[Any]) -> str:
    """The Postgres array cast of a column for the unnest() form of the insert."""
    if isinstance(column.type, UTCDateTime):
        return "timestamptz[]"
    return "int[]" if isinstance(column.type, sa.Integer) else "text[]"


_PG_ARRAY_TYPES = {c.name: _pg_array_type(c) for c in events.columns if c.name != "position"}


@cache
def pg_append(columns: tuple[str, ...]) -> str:
    """Postgres: insert a batch and move its run's row, in one statement.

    The rows arrive as one array per column and are spread by ``unnest``, so the statement's
    text and its eight parameters are the same for every batch size: the driver parses it once
    and the server runs it as a prepared statement, where a multi-row VALUES list would be new
    SQL for every batch (and, past 50 parameters, parsed again on every call by the driver).
    The UPDATE of ``runs`` is a data-modifying CTE, so it runs whether or not its result is
    read; the caller rolls the whole transaction back if fewer rows were inserted than sent.
    With no ``columns`` there is no UPDATE (the run's row is inserted apart, before).
    """
    arrays = ", ".join(f"%b::{_PG_ARRAY_TYPES[c]}" for c in EVENT_COLUMNS)
    insert = (
        f"INSERT INTO {events.name} ({', '.join(EVENT_COLUMNS)}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (run_id, seq) DO NOTHING RETURNING seq, position"
    )
    if not columns:
        return insert
    sets = ", ".join(f"{c} = %s" for c in columns)
    return (
        f"WITH ins AS ({insert}), "
        f"upd AS (UPDATE {runs.name} SET {sets} WHERE run_id = %s) "
        "SELECT seq, position FROM ins"
    )


def pg_event_arrays(rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """One list per column, in EVENT_COLUMNS order, for ``pg_append``."""
    return [[row[c] for row in rows] for c in EVENT_COLUMNS]


@cache
def insert_run(dialect: Dialect, columns: tuple[str, ...]) -> str:
    marks = ", ".join([_mark(dialect)] * len(columns))
    return f"INSERT INTO {runs.name} ({', '.join(columns)}) VALUES ({marks})"


@cache
def update_run(dialect: Dialect, columns: tuple[str, ...]) -> str:
    mark = _mark(dialect)
    sets = ", ".join(f"{c} = {mark}" for c in columns)
    return f"UPDATE {runs.name} SET {sets} WHERE run_id = {mark}"


@cache
def select_events(dialect: Dialect, bounded: bool) -> str:
    """One run's events with ``seq > ?`` (and ``seq <= ?`` when ``bounded``), in seq order:
    ``position`` then EVENT_COLUMNS."""
    mark = _mark(dialect)
    columns = ", ".join(("position", *EVENT_COLUMNS))
    sql = f"SELECT {columns} FROM {events.name} WHERE run_id = {mark} AND seq > {mark}"
    return sql + (f" AND seq <= {mark}" if bounded else "") + " ORDER BY seq"


@cache
def timestamp_reader(dialect: Dialect) -> Callable[[Any], Any]:
    """What the driver returns for a timestamp column -> the aware UTC datetime that
    ``UTCDateTime`` gives through SQLAlchemy Core."""
    process = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    return process if process is not None else (lambda value: value)


@cache
def _timestamp_binder(dialect: Dialect) -> Callable[[Any], Any]:
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else (lambda value: value)


def event_params(dialect: Dialect, rows: Sequence[Mapping[str, Any]]) -> tuple[Any, ...]:
    """Flat parameters for ``insert_events``, in EVENT_COLUMNS order."""
    bind = _timestamp_binder(dialect)
    bound: dict[Any, Any] = {}  # a batch shares one timestamp: convert it once
    flat: list[Any] = []
    for row in rows:
        at = row["recorded_at"]
        if at not in bound:
            bound[at] = bind(at)
        flat.extend(bound[at] if c == "recorded_at" else row[c] for c in EVENT_COLUMNS)
    return tuple(flat)


def values(dialect: Dialect, row: Mapping[str, Any], columns: Iterable[str]) -> list[Any]:
    bind = _timestamp_binder(dialect)
    return [bind(row[c]) if c in _TIMESTAMPS else row[c] for c in columns]


LOCK_LOG = f"LOCK TABLE {events.name} IN EXCLUSIVE MODE"


def pg_pipeline(
    conn: sa.Connection, statements: Sequence[tuple[str, Sequence[Any] | None]]
) -> list[Sequence[Any]]:
    """Postgres: send ``statements`` in one round trip (psycopg's pipeline mode); returns the
    rows of the last one.

    SQLAlchemy cannot run a pipeline, so the statements go to the driver's connection inside
    the caller's SQLAlchemy transaction, and a driver error is handed back the way SQLAlchemy
    would: a disconnect invalidates the pooled connection and raises a ``DBAPIError`` whose
    ``connection_invalidated`` is set, every error leaves as SQLAlchemy's wrapper of its class.
    """
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    dialect = conn.dialect
    try:
        with dbapi.pipeline():
            cursors = []
            for sql, params in statements:
                cur = dbapi.cursor()
                cur.execute(sql, params)
                cursors.append(cur)
        rows = list(cursors[-1].fetchall())
        return rows
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, dbapi, None)
        if lost:
            conn.invalidate()
        raise sa.exc.DBAPIError.instance(
            statements[-1][0],
            None,
            error,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from error
