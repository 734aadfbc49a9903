"""The Alembic tree agrees with the MetaData, round-trips, and refuses unknown revisions."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from kitchen.errors import SchemaMismatch
from kitchen.store import NewEvent, current_revision, open_store, upgrade
from kitchen.store._engine import create_engine, parse_url
from kitchen.store._migrate import HEAD_REVISION, alembic_config
from kitchen.store.schema import metadata

HEAD = "0003"  # written by hand: bump with every new revision


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def _diff(url: str) -> list[object]:
    engine = create_engine(parse_url(url))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        found = compare_metadata(context, metadata)
    engine.dispose()
    return list(found)


def _tables(url: str) -> set[str]:
    engine = create_engine(parse_url(url))
    names = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    return names


def test_single_head() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [HEAD]
    assert HEAD_REVISION == HEAD


def test_head_matches_metadata(db_url: str) -> None:
    assert current_revision(db_url) is None
    assert upgrade(db_url) == HEAD
    assert current_revision(db_url) == HEAD
    assert _diff(db_url) == []


def test_downgrade_base_then_upgrade_head(db_url: str) -> None:
    upgrade(db_url)
    engine = create_engine(parse_url(db_url))
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    engine.dispose()
    assert _tables(db_url) <= {"alembic_version"}
    assert upgrade(db_url) == HEAD
    assert _tables(db_url) == {
        "alembic_version",
        "events",
        "runs",
        "leases",
        "cancel_requests",
        "snapshots",
    }
    assert _diff(db_url) == []
    store = open_store(db_url)
    store.append("r1", [NewEvent("RunCreated", {"recipe": "sl"})], 0)
    assert store.verify("r1").ok
    store.close()


def test_empty_database_is_created_at_head_on_open(db_url: str) -> None:
    open_store(db_url).close()
    assert current_revision(db_url) == HEAD


def test_unknown_future_revision_is_refused(db_url: str) -> None:
    upgrade(db_url)
    engine = create_engine(parse_url(db_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dcafe'")
    engine.dispose()
    for attempt in (lambda: open_store(db_url), lambda: upgrade(db_url)):
        with pytest.raises(SchemaMismatch) as info:
            attempt()
        assert "f00dcafe" in str(info.value)
        assert "\n" not in str(info.value)


def test_migrate_false_refuses_an_empty_database(db_url: str) -> None:
    with pytest.raises(SchemaMismatch, match="kitchen db upgrade"):
        open_store(db_url, migrate=False)
    assert current_revision(db_url) is None
