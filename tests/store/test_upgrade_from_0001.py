"""A database written at schema revision 0001, with runs in it, upgraded to the head.

The database is the v1 fixture's (``tests/fixtures/v1``: written by kitchen at revision 0001,
a completed, a crashed and a resumed run). On SQLite it is a copy of that file; on Postgres a
fresh schema is built by Alembic at 0001 and given the same rows, as a dump and restore would.
After ``kitchen db upgrade``: every row of every table is what it was (compared column by
column, hashes included), every chain verifies, and the crashed run resumes to completion.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from kitchen.errors import SchemaMismatch
from kitchen.store import current_revision, open_store
from kitchen.store._engine import create_engine, parse_url
from kitchen.store._migrate import alembic_config
from kitchen.store.schema import cancel_requests, events, leases, runs
from kitchen.testing.cli import Kitchen, make_kitchen

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1"
TABLES = (events, runs, leases, cancel_requests)
HEAD = "0003"  # written by hand, as in test_migrations.py
LATER_COLUMNS = {"runs": ("parent",)}  # added after 0001 (0003: a fork's parent)
# Read from the fixture once (sqlite3 kitchen.db 'select run_id, count(*) ...') and pasted.
EVENTS_PER_RUN = {"v1-completed": 93, "v1-crashed": 70, "v1-resumed": 113}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A copy of the v1 KITCHEN_HOME (its blobs are what the crashed run resumes from)."""
    copy = tmp_path / "home"
    shutil.copytree(FIXTURE, copy, ignore=shutil.ignore_patterns("README.md", "make.sh"))
    return copy


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the 0001 tables, in the columns they had at 0001, read with plain
    SQLAlchemy (no kitchen code)."""
    engine = create_engine(parse_url(url))
    try:
        with engine.connect() as conn:
            out = {}
            for t in TABLES:
                later = LATER_COLUMNS.get(t.name, ())
                cols = [c for c in t.columns if c.name not in later]
                query = sa.select(*cols).order_by(*t.primary_key)
                out[t.name] = [tuple(r) for r in conn.execute(query)]
            return out
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(parse_url(url))
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _upgrade_and_check(
    kitchen: Kitchen, url: str, before: dict[str, list[tuple[Any, ...]]]
) -> None:
    assert current_revision(url) == "0001"
    r = kitchen("db", "upgrade")
    assert (r.code, r.stdout) == (0, f"{HEAD}\n"), r.stderr
    assert current_revision(url) == HEAD
    assert "snapshots" in _tables(url)
    assert _rows(url) == before  # every event, run row, lease: unchanged, hashes included
    engine = create_engine(parse_url(url))
    try:
        with engine.connect() as conn:  # no v1 run was a fork
            assert set(conn.execute(sa.select(runs.c.parent)).scalars()) == {None}
    finally:
        engine.dispose()
    counts: dict[str, int] = {}
    for row in before["events"]:
        counts[row[1]] = counts.get(row[1], 0) + 1
    assert counts == EVENTS_PER_RUN
    with open_store(url) as store:
        for run_id in EVENTS_PER_RUN:
            assert store.verify(run_id).ok, run_id
    for run_id in EVENTS_PER_RUN:
        verify = kitchen("replay", run_id, "--verify")
        assert verify.code == 0, verify.stdout[-500:] + verify.stderr
    shown = json.loads(kitchen("runs", "--json").stdout)
    assert {row["run_id"]: row["status"] for row in shown} == {
        "v1-completed": "completed",
        "v1-crashed": "crashed",
        "v1-resumed": "completed",
    }


def _resume_the_crashed_run(kitchen: Kitchen, url: str, before: dict[str, Any]) -> None:
    r = kitchen("resume", "v1-crashed")
    assert r.code == 0, r.stderr[-1500:]
    state = json.loads(kitchen("replay", "v1-crashed", "--json").stdout)["state"]
    assert (state["status"], state["step"], state["optim_steps"]) == (
        "completed",
        6,
        [0, 1, 2, 3, 4, 5],
    )
    after = _rows(url)["events"]
    assert after[: len(before["events"])] == before["events"]  # history only grew
    verify = kitchen("replay", "v1-crashed", "--verify")
    assert verify.code == 0, verify.stdout[-500:] + verify.stderr


@pytest.mark.slow
def test_sqlite_at_0001_upgrades_and_its_crashed_run_resumes(home: Path) -> None:
    url = f"sqlite:///{home / 'kitchen.db'}"
    before = _rows(url)
    kitchen = make_kitchen(home)
    _upgrade_and_check(kitchen, url, before)
    _resume_the_crashed_run(kitchen, url, before)


def _postgres_at_0001(url: str, source: str) -> None:
    """Alembic builds revision 0001 in the empty schema; the fixture's rows are copied in."""
    engine = create_engine(parse_url(url))
    sqlite = create_engine(parse_url(source))
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0001")
        with sqlite.connect() as src, engine.begin() as dst:
            for table in TABLES:
                later = LATER_COLUMNS.get(table.name, ())
                cols = [c for c in table.columns if c.name not in later]
                rows = [dict(r._mapping) for r in src.execute(sa.select(*cols))]
                if rows:
                    dst.execute(table.insert(), rows)
            # as pg_restore does: the position sequence continues after the copied rows
            dst.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('events', 'position'), "
                "(SELECT max(position) FROM events))"
            )
    finally:
        engine.dispose()
        sqlite.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_at_0001_upgrades_and_its_crashed_run_resumes(
    home: Path, postgres_url: str
) -> None:
    _postgres_at_0001(postgres_url, f"sqlite:///{home / 'kitchen.db'}")
    before = _rows(postgres_url)
    assert before == _rows(f"sqlite:///{home / 'kitchen.db'}")
    # a shared database is not upgraded behind its users' backs
    with pytest.raises(SchemaMismatch, match="kitchen db upgrade"):
        open_store(postgres_url)
    kitchen = make_kitchen(home, postgres_url)
    _upgrade_and_check(kitchen, postgres_url, before)
    _resume_the_crashed_run(kitchen, postgres_url, before)
