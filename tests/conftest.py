"""Database fixtures shared by every test area.

``sqlite_url`` is a fresh file per test. ``postgres_url`` is a fresh, empty schema per test
inside one database created for the whole session (from KITCHEN_TEST_POSTGRES_URL) and
dropped at its end: a schema costs milliseconds where a database costs a second. The URL
pins the schema through ``options=-csearch_path=...``, so it is a complete SQLAlchemy URL
that also works as KITCHEN_DB_URL in a subprocess.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

# The shared contract suites live in the package; rewrite their asserts for clear failures.
pytest.register_assert_rewrite("kitchen.testing")

POSTGRES_ENV = "KITCHEN_TEST_POSTGRES_URL"

# One torch thread per process. The suite runs two workers (pyproject's addopts), each starting
# `kitchen` processes; at torch's default of a thread per core, two of them ask for twice the
# cores there are, and OpenMP's spinning threads then run a step several times slower than one
# thread each (3.6x for two concurrent `kitchen run rl_basic` on 2 cores). The learning claims in
# the README were measured with one thread too. A value the caller set is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kitchen.db'}"


def _psycopg(url: str) -> URL:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


@pytest.fixture(scope="session")
def _postgres_session_db() -> Iterator[sa.Engine | None]:
    """A database of our own for this session, so tests never see another session's data."""
    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        yield None
        return
    name = f"kitchen_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_psycopg(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        # Commits still order and lock exactly as in production; they just skip the WAL flush,
        # which tests (never a server crash) do not need and which dominates their run time.
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    engine = sa.create_engine(_psycopg(admin_url).set(database=name), isolation_level="AUTOCOMMIT")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def postgres_url(_postgres_session_db: sa.Engine | None) -> str:
    """A full SQLAlchemy URL of an empty schema that only this test uses."""
    if _postgres_session_db is None:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with _postgres_session_db.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = _postgres_session_db.url.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


# --------------------------------------------------------------------------- CI guard
# With KITCHEN_REQUIRE_POSTGRES=1 (set by .ci/run) a skipped Postgres test fails the session:
# a CI run that silently skipped them would prove nothing about Postgres.
_postgres_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and POSTGRES_ENV in str(report.longrepr):
        _postgres_skips.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("KITCHEN_REQUIRE_POSTGRES") and _postgres_skips:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(
            f"\nKITCHEN_REQUIRE_POSTGRES is set but {len(_postgres_skips)} Postgres test(s) were "
            f"skipped, e.g. {_postgres_skips[0]}; set {POSTGRES_ENV}"
        )
