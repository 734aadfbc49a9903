"""KITCHEN_HOME is resolved in one place, so the database and the run folders agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.paths import checkpoint_key, final_key, kitchen_home, valid_run_id
from kitchen.store import resolve_db_url


@pytest.mark.parametrize("value", [None, ""])
def test_an_unset_or_empty_home_is_the_default_for_everyone(
    value: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KITCHEN_DB_URL", raising=False)
    if value is None:
        monkeypatch.delenv("KITCHEN_HOME", raising=False)
    else:
        monkeypatch.setenv("KITCHEN_HOME", value)
    home = tmp_path.resolve() / "kitchen-runs"
    assert kitchen_home() == home
    assert resolve_db_url() == f"sqlite:///{home}/kitchen.db"


def test_a_home_with_a_tilde_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KITCHEN_HOME", "~/runs")
    monkeypatch.delenv("KITCHEN_DB_URL", raising=False)
    assert kitchen_home() == tmp_path.resolve() / "runs"
    assert resolve_db_url() == f"sqlite:///{tmp_path.resolve()}/runs/kitchen.db"


def test_the_run_folder_layout() -> None:
    assert checkpoint_key("r1", "step-000020") == "r1/checkpoints/step-000020"
    assert final_key("r1") == "r1/final"


@pytest.mark.parametrize(
    ("run_id", "ok"),
    [
        ("run-1", True),
        ("a.b_c", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("../etc", False),
        ("-lead", False),
        ("has space", False),
        ("", False),
        (7, False),
    ],
)
def test_the_run_id_rule(run_id: object, ok: bool) -> None:
    assert valid_run_id(run_id) is ok
