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


def execute(conn: sa.Connection, sql: str, params: Sequence[Any]) -> Iterable[Sequence[Any]]:
    """Run one statement of the hot path; returns its rows.

    SQLite gets the statement straight from its driver: there is no connection to lose,
    and its errors (``sqlite3.Error``) are translated like SQLAlchemy's. Postgres goes through
    ``exec_driver_sql`` so that a dropped connection is recognised and the pool invalidated.
    """
    if conn.dialect.name == "sqlite":
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        return dbapi.execute(sql, params).fetchall()
    result = conn.exec_driver_sql(sql, tuple(params))
    return result.all() if result.returns_rows else []


def insert_rows(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """Insert event rows; returns seq -> position of those that were inserted."""
    positions: dict[int, int] = {}
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start : start + CHUNK_ROWS]
        sql = insert_events(conn.dialect, len(chunk))
        for seq, position in execute(conn, sql, event_params(conn.dialect, chunk)):
            positions[seq] = position
    return positions
