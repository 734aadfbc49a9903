"""Database URLs, engines and the translation of driver errors into kitchen errors.

Nothing outside this package should ever see a driver exception: a user who mistyped a URL or
whose server is down gets one line that says what and how to fix, with the password masked.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine, make_url

from kitchen.errors import StoreError, StoreUnavailable
from kitchen.paths import default_db_path

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_LOCK_TIMEOUT = "30s"


def resolve_db_url(url: str | None = None) -> str:
    """explicit URL > ``KITCHEN_DB_URL`` > ``sqlite:///$KITCHEN_HOME/kitchen.db``."""
    if url:
        return url
    if os.environ.get("KITCHEN_DB_URL"):
        return os.environ["KITCHEN_DB_URL"]
    return f"sqlite:///{default_db_path()}"


def parse_url(url: str) -> URL:
    """Parse and normalise: plain ``postgresql://`` means psycopg 3, the driver we ship."""
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError):
        raise StoreUnavailable(
            f"bad database URL {mask(url)!r}: use sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreUnavailable(
            f"unsupported database {parsed.get_backend_name()!r} in "
            f"{parsed.render_as_string(hide_password=True)}: use sqlite or postgresql"
        )
    return parsed


def mask(url: str) -> str:
    """The URL with any password replaced by ``***`` (best effort for unparsable ones)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        head, sep, tail = url.rpartition("@")
        if not sep or "://" not in head:
            return url
        scheme, _, userinfo = head.partition("://")
        user = userinfo.split(":", 1)[0]
        return f"{scheme}://{user}:***@{tail}" if ":" in userinfo else url


def create_engine(url: URL) -> Engine:
    """An engine with kitchen's connection settings (see ``_sqlite_settings``)."""
    try:
        return _create_engine(url)
    except (exc.ArgumentError, ImportError) as error:
        shown = url.render_as_string(hide_password=True)
        hint = (
            "pip install 'kitchen-posttrain[postgres]'"
            if "psycopg" in str(error)
            else ("use sqlite:///PATH or postgresql+psycopg://...")
        )
        raise StoreUnavailable(
            f"cannot use database {shown}: {_first_line(error)}; {hint}"
        ) from None


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"isolation_level": None})
        event.listen(engine, "connect", _sqlite_settings)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    options = f"-c lock_timeout={POSTGRES_LOCK_TIMEOUT}"
    if url.query.get("options"):
        options = f"{url.query['options']} {options}"
    return sa.create_engine(url.update_query_dict({"options": options}))


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


def is_disconnect(error: BaseException) -> bool:
    """True when the connection itself was lost (so a retry on a new one makes sense)."""
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


def translate(error: BaseException, url: str, doing: str) -> StoreError:
    """Turn a driver/SQLAlchemy error into a one-line kitchen error naming the database."""
    where = mask(url)
    detail = _first_line(getattr(error, "orig", None) or error)
    password = _password(url)
    if password:
        detail = detail.replace(password, "***")
    unavailable = (exc.OperationalError, exc.InterfaceError, sqlite3.OperationalError)
    if isinstance(error, unavailable) or _is_not_a_database(error):
        hint = (
            "check that KITCHEN_DB_URL or KITCHEN_HOME points at a kitchen database file"
            if where.startswith("sqlite")
            else "check that the server is running and that KITCHEN_DB_URL is right"
        )
        return StoreUnavailable(f"cannot {doing} in database {where}: {detail}; {hint}")
    return StoreError(f"database error while trying to {doing} in {where}: {detail}")


def _is_not_a_database(error: BaseException) -> bool:
    orig = getattr(error, "orig", error)
    return isinstance(orig, sqlite3.DatabaseError) and "not a database" in str(orig)


def _password(url: str) -> str | None:
    try:
        password = make_url(url).password
        return None if password is None else str(password)
    except Exception:
        return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].strip()


DRIVER_ERRORS: tuple[type[BaseException], ...] = (exc.SQLAlchemyError, sqlite3.Error)
