"""The KITCHEN_* variables: one settings object, one table in docs/settings.md, one line per
bad value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kitchen import settings
from kitchen.errors import ConfigError

DOC = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()


def test_the_table_lists_every_variable_and_nothing_else() -> None:
    documented = set(re.findall(r"^\| `(KITCHEN_[A-Z_]+)` \|", DOC, re.M))
    assert documented == {settings.env_name(f) for f in settings.Settings.model_fields}
    assert tuple(settings.Settings.model_fields) == settings.NAMES


def test_no_module_reads_a_kitchen_variable_on_its_own() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(p.relative_to(root))
        for folder in ("kitchen", "store", "recipes", "migrations")
        for p in (root / folder).rglob("*.py")
        if p.name != "settings.py"
        and "kitchen/testing/" not in p.as_posix()
        and re.search(r"environ(\.get)?\(?\[?['\"]KITCHEN_", p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_defaults_and_empty_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in settings.Settings.model_fields:
        monkeypatch.delenv(settings.env_name(name), raising=False)
    monkeypatch.setenv("KITCHEN_HOME", "")
    s = settings.current()
    assert (s.commit_window_ms, s.snapshot_every, s.debug, s.db_url) == (50.0, 10_000, False, None)
    assert s.home_path == settings.home() == (Path.cwd() / "kitchen-runs").resolve()
    monkeypatch.setenv("KITCHEN_SNAPSHOT_EVERY", "250")
    monkeypatch.setenv("KITCHEN_DEBUG", "1")
    assert (settings.current().snapshot_every, settings.current().debug) == (250, True)


def test_one_line_per_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITCHEN_COMMIT_WINDOW_MS", "soon")
    monkeypatch.setenv("KITCHEN_SNAPSHOT_EVERY", "-3")
    monkeypatch.setenv("KITCHEN_DEBUG", "perhaps")
    with pytest.raises(ConfigError) as info:
        settings.current()
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("KITCHEN_COMMIT_WINDOW_MS='soon' is not valid")
    assert "set it to a number of milliseconds from 0 to 60000" in lines[0]
    assert lines[1].startswith("KITCHEN_SNAPSHOT_EVERY='-3' is not valid")
    assert lines[2].startswith("KITCHEN_DEBUG='perhaps' is not valid")
