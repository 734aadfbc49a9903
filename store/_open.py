"""Opening a store: resolve the URL, connect, and make sure the schema is the code's."""

from __future__ import annotations

import sqlalchemy as sa

from kitchen.errors import SchemaMismatch

from . import _dialects, _migrate
from ._engine import DRIVER_ERRORS, create_engine, parse_url, resolve_db_url, translate
from .event_store import EventStore, Hook


def _engine_for(url: str | None) -> tuple[sa.Engine, str]:
    raw = resolve_db_url(url)
    return create_engine(parse_url(raw)), raw


def open_store(
    url: str | None = None, *, migrate: bool = True, hook: Hook | None = None
) -> EventStore:
    """Open the event store at ``url`` (see :func:`resolve_db_url`).

    An empty database is created at the newest revision. An older SQLite database is upgraded
    in place (one notice on stderr): it is a single user's file. An older Postgres database
    is refused, because it is shared and its upgrade should be a deliberate
    ``kitchen db upgrade``. A revision the code does not know is always refused. ``hook``
    is told of each named moment of an append (see :data:`Hook`).
    """
    engine, raw = _engine_for(url)
    try:
        _ensure_schema(engine, raw, migrate=migrate)
    except BaseException:
        engine.dispose()
        raise
    return EventStore(engine, raw, hook=hook)


def _ensure_schema(engine: sa.Engine, raw: str, *, migrate: bool) -> None:
    store = EventStore(engine, raw)
    display = store.url_for_display
    try:
        with engine.connect() as conn:
            current = _migrate.revision_of(conn)
            conn.rollback()
        head = _migrate.head_revision()
        _migrate.check(current, display)
        if current == head:
            return
        if not migrate or (current is not None and not _dialects.of(engine).upgrades_on_open):
            raise SchemaMismatch(
                f"database {display} is at schema revision {current or 'none'}, "
                f"this kitchen needs {head}; run `kitchen db upgrade`"
            )
        _migrate.upgrade_locked(engine, display, notice=True)
    except DRIVER_ERRORS as error:
        raise translate(error, raw, "open the event store") from None


def upgrade(url: str | None = None) -> str:
    """Create or upgrade the database schema to the newest revision; returns it."""
    engine, raw = _engine_for(url)
    try:
        display = EventStore(engine, raw).url_for_display
        return _migrate.upgrade_locked(engine, display, notice=False)
    except DRIVER_ERRORS as error:
        raise translate(error, raw, "upgrade the schema") from None
    finally:
        engine.dispose()


def current_revision(url: str | None = None) -> str | None:
    """The database's schema revision, None for a database kitchen never touched."""
    engine, raw = _engine_for(url)
    try:
        with engine.connect() as conn:
            return _migrate.revision_of(conn)
    except DRIVER_ERRORS as error:
        raise translate(error, raw, "read the schema revision") from None
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest schema revision this code ships."""
    return _migrate.head_revision()
