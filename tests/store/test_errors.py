"""Driver errors never escape: each becomes a one-line kitchen error, password masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.errors import StoreError, StoreUnavailable
from kitchen.store import NewEvent, open_store, resolve_db_url


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text
    return text


def test_unreachable_postgres_is_unavailable_with_password_masked() -> None:
    url = "postgresql+psycopg://kitchen:hunter2@127.0.0.1:1/kitchen?connect_timeout=2"
    with pytest.raises(StoreUnavailable) as info:
        open_store(url)
    text = _one_line(info.value)
    assert "hunter2" not in text
    assert "kitchen:***@127.0.0.1:1" in text
    assert info.value.__cause__ is None


def test_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "kitchen.db"
    junk.write_bytes(b"this is a text file, not SQLite\n" * 200)
    with pytest.raises(StoreUnavailable, match="not a database") as info:
        open_store(f"sqlite:///{junk}")
    _one_line(info.value)


@pytest.mark.parametrize("url", ["not a url", "mysql://u:pw@host/db", "sqlite+nodriver:///x"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(StoreUnavailable) as info:
        open_store(url)
    assert ":pw@" not in _one_line(info.value)


def test_errors_after_opening_are_wrapped(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE events")
    with pytest.raises(StoreError, match="no such table") as info:
        store.append("r1", [NewEvent("E", {})], 0)
    _one_line(info.value)
    with pytest.raises(StoreError, match="no such table"):
        store.read("r1")
    store.close()


def test_sqlite_parent_folder_is_created(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'a' / 'b' / 'kitchen.db'}")
    assert (tmp_path / "a" / "b" / "kitchen.db").is_file()
    store.close()


def test_url_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KITCHEN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KITCHEN_DB_URL", raising=False)
    assert resolve_db_url() == f"sqlite:///{tmp_path}/home/kitchen.db"
    monkeypatch.setenv("KITCHEN_DB_URL", "sqlite:////elsewhere.db")
    assert resolve_db_url() == "sqlite:////elsewhere.db"
    assert resolve_db_url("sqlite:////explicit.db") == "sqlite:////explicit.db"
    monkeypatch.delenv("KITCHEN_HOME")
    monkeypatch.delenv("KITCHEN_DB_URL")
    monkeypatch.chdir(tmp_path)
    assert resolve_db_url() == f"sqlite:///{tmp_path}/kitchen-runs/kitchen.db"
