"""The database schema: one SQLAlchemy Core ``MetaData`` that the Alembic tree targets.

Edit this first, then write a revision under ``migrations/versions`` (a test fails if the
two disagree). ``events`` is the history; ``runs`` is a projection of it kept in the same
transaction; ``snapshots`` caches a run's folded state at some seqs, so that a reader folds
only the events after one; ``leases`` and ``cancel_requests`` are operational state, not
history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, microseconds intact on both databases.

    ``recorded_at`` is hashed, so it must read back exactly as written: Postgres keeps it in a
    ``timestamptz``; SQLite keeps SQLAlchemy's fixed-width text, which has no zone, so UTC is
    implied there.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps given to the event store must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-numbers an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events = sa.Table(
    "events",
    metadata,
    sa.Column("position", Position, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("type", sa.String(128), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("run_id", "seq"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("recipe", sa.Text, nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_seq", sa.Integer, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=True),
    # the run this one was forked from (RunCreated.fork.run_id; migration 0003)
    sa.Column("parent", sa.String(64), nullable=True),
    sa.Index(None, "status"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

cancel_requests = sa.Table(
    "cancel_requests",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("requested_at", UTCDateTime, nullable=False),
)

# A run's folded state at ``seq``, as text written by a fold of a given ``version`` (the fold's
# code). A cache, never the truth: ``event_hash`` is the hash of the run's event at ``seq`` and
# ``sha256`` covers every other column, so a snapshot that no longer matches its log or its
# own contents is ignored; deleting every row only makes readers fold more events.
snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("event_hash", sa.String(64), nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "version", "seq"),
)
