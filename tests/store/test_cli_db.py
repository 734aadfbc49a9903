"""`kitchen db upgrade` and `kitchen db current` through the installed console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _kitchen(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("kitchen")
    return subprocess.run(
        [str(script), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KITCHEN_DB_URL", "KITCHEN_HOME")}
    return env | extra


def test_upgrade_then_current_on_an_empty_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    env = _env(KITCHEN_DB_URL=f"sqlite:///{db}")
    before = _kitchen("db", "current", env=env)
    assert (before.returncode, before.stdout) == (0, "none\n")
    up = _kitchen("db", "upgrade", env=env)
    assert (up.returncode, up.stdout) == (0, "0003\n")
    after = _kitchen("db", "current", env=env)
    assert (after.returncode, after.stdout) == (0, "0003\n")
    assert "code head: 0003" in after.stderr


def test_kitchen_home_is_honoured(tmp_path: Path) -> None:
    env = _env(KITCHEN_HOME=str(tmp_path / "home"))
    up = _kitchen("db", "upgrade", env=env)
    assert (up.returncode, up.stdout) == (0, "0003\n")
    assert (tmp_path / "home" / "kitchen.db").is_file()


def test_unreachable_database_is_one_line_exit_2(tmp_path: Path) -> None:
    env = _env(KITCHEN_DB_URL="postgresql://u:sekrit@127.0.0.1:1/db?connect_timeout=2")
    result = _kitchen("db", "upgrade", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("kitchen: error: cannot upgrade the schema")
    assert "sekrit" not in result.stderr
