"""Database URLs, engines and the translation of driver errors into kitchen errors.

Nothing outside this package should ever see a driver exception: a user who mistyped a URL or
whose server is down gets one line that says what and how to fix, with the password masked.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc
from sqlalchemy.engine import URL, Engine, make_url

from kitchen.engine.io_faults import storage_fault
from kitchen.errors import InfrastructureError, StoreError, StoreUnavailable
from kitchen.paths import default_db_path

from . import _dialects


def resolve_db_url(url: str | None = None) -> str:
    """explicit URL > ``KITCHEN_DB_URL`` > ``sqlite:///$KITCHEN_HOME/kitchen.db``."""
    if url:
        return url
    from kitchen.settings import db_url

    if configured := db_url():
        return configured
    return f"sqlite:///{default_db_path()}"


def check_db_url(url: str | None = None) -> None:
    """Refuse, without connecting, a database URL that does not parse or names a database
    kitchen does not support (``StoreUnavailable``, one line)."""
    parse_url(resolve_db_url(url))


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
    """An engine with kitchen's connection settings for its database (``_dialects``)."""
    try:
        return _dialects.for_name(url.get_backend_name()).create_engine(url)
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


def is_disconnect(error: BaseException) -> bool:
    """True when the connection itself was lost (so a retry on a new one makes sense)."""
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


def translate(error: BaseException, url: str, doing: str) -> StoreError | InfrastructureError:
    """Turn a driver/SQLAlchemy error into a one-line kitchen error naming the database.

    A database whose disk is full, read-only or failing (SQLite's "database or disk is full",
    Postgres' SQLSTATE 53100 …) is the storage's fault, not the store's: ``DiskFull``,
    ``ReadOnlyStorage`` or ``StorageIOError`` (``kitchen.engine.io_faults``), which no retry fixes
    and which ends an attempt resumable."""
    where = mask(url)
    detail = _first_line(getattr(error, "orig", None) or error)
    password = _password(url)
    if password:
        detail = detail.replace(password, "***")
    fault = storage_fault(error, f"to database {where} ({doing})", then="try again")
    if fault is not None:
        return fault
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
