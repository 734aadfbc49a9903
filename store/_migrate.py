"""Schema revisions: read the database's, compare with the code's, upgrade under a lock.

Alembic is configured in code (``script_location`` is the installed ``kitchen/migrations``
folder), so no ``alembic.ini`` is needed wherever kitchen is installed. Alembic itself is
imported only when a database has to be created or upgraded: opening an up-to-date one reads
``alembic_version`` with plain SQL, which keeps ``kitchen runs`` quick to start.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from kitchen.errors import SchemaMismatch

from . import _dialects

if TYPE_CHECKING:
    from alembic.config import Config

# The newest revision under migrations/versions (a test keeps the two equal).
HEAD_REVISION = "0003"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """A Config pointing at the shipped revisions; ``connection`` is used when given."""
    from alembic.config import Config

    import kitchen.migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(kitchen.migrations.__file__).parent))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    return HEAD_REVISION


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def revision_of(conn: sa.Connection) -> str | None:
    """The database's revision; None when it has never been migrated."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    if len(rows) > 1:
        raise SchemaMismatch(f"the database has several schema revisions {sorted(rows)}")
    return str(rows[0]) if rows else None


def check(revision: str | None, display: str) -> None:
    """Refuse a revision this code does not know (a newer kitchen wrote it)."""
    if revision is not None and revision != HEAD_REVISION and revision not in known_revisions():
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
        _dialects.of(conn).lock_migrations(conn)
        current = revision_of(conn)
        check(current, display)
        if current == head:
            return head
        if current is None and sa.inspect(conn).has_table("events"):
            raise SchemaMismatch(
                f"database {display} has an events table but no kitchen schema revision; "
                "point KITCHEN_DB_URL at a database (or schema) of its own"
            )
        from alembic import command

        command.upgrade(alembic_config(conn), "head")
    if notice and current is not None:
        print(f"kitchen: upgraded database {display} from {current} to {head}", file=sys.stderr)
    return head
