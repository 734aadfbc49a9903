"""Schema revisions: read the database's, compare with the code's, upgrade under a lock.

Alembic is configured in code (``script_location`` is the installed ``kitchen/migrations``
folder), so no ``alembic.ini`` is needed wherever kitchen is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from kitchen.errors import SchemaMismatch

# Any fixed number: Postgres advisory lock that serialises concurrent upgrades.
_PG_MIGRATION_LOCK = 0x6B697463


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """A Config pointing at the shipped revisions; ``connection`` is used when given."""
    import kitchen.migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(kitchen.migrations.__file__).parent))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "kitchen ships at least one revision"
    return head


def known_revisions() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def revision_of(conn: sa.Connection) -> str | None:
    """The database's revision; None when it has never been migrated."""
    return MigrationContext.configure(conn).get_current_revision()


def check(revision: str | None, display: str) -> None:
    """Refuse a revision this code does not know (a newer kitchen wrote it)."""
    if revision is not None and revision not in known_revisions():
        raise SchemaMismatch(
            f"database {display} is at schema revision {revision}, unknown to this kitchen "
            f"(head {head_revision()}); upgrade kitchen to a version that knows it"
        )


def upgrade_locked(engine: sa.Engine, display: str, *, notice: bool) -> str:
    """Upgrade to head inside one transaction that holds the migration lock.

    Concurrent first opens of an empty database are common (many workers start at once): the
    lock makes one create the schema and the others find it done when they re-check.
    """
    head = head_revision()
    with engine.connect().execution_options(kitchen_begin="IMMEDIATE") as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        current = revision_of(conn)
        check(current, display)
        if current == head:
            return head
        if current is None and sa.inspect(conn).has_table("events"):
            raise SchemaMismatch(
                f"database {display} has an events table but no kitchen schema revision; "
                "point KITCHEN_DB_URL at a database (or schema) of its own"
            )
        command.upgrade(alembic_config(conn), "head")
    if notice and current is not None:
        print(f"kitchen: upgraded database {display} from {current} to {head}", file=sys.stderr)
    return head
