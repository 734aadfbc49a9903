"""`kitchen runs`: the projection as a table or JSON, with crashed derived from the lease."""

from __future__ import annotations

import json
from datetime import datetime

from kitchen.cli.runs import STATUSES
from kitchen.engine.state import STATUSES as FOLD_STATUSES
from kitchen.testing.cli import Kitchen


def _rows(stdout: str) -> list[list[str]]:
    """Data rows as cells, without the UPDATED date and time (the last two cells)."""
    lines = stdout.splitlines()
    assert lines[0].split() == [
        "RUN",
        "ID",
        "RECIPE",
        "STATUS",
        "STEP",
        "ATTEMPTS",
        "UPDATED",
        "(UTC)",
    ]
    return [line.split()[:-2] for line in lines[1:]]


def test_the_table_lists_every_run_oldest_first(kitchen: Kitchen, runs_db: None) -> None:
    r = kitchen("runs")
    assert (r.code, r.stderr) == (0, "")
    assert _rows(r.stdout) == [
        ["done", "sl_basic", "completed", "2", "1"],
        ["again", "sl_basic", "interrupted", "1", "2"],
        ["gone", "sl_basic", "crashed", "0", "1"],
        ["busy", "dpo_basic", "running", "0", "1"],
        ["fresh", "sl_basic", "created", "-", "0"],
    ]


def test_status_filters_tell_crashed_from_running(kitchen: Kitchen, runs_db: None) -> None:
    assert _rows(kitchen("runs", "--status", "crashed").stdout) == [
        ["gone", "sl_basic", "crashed", "0", "1"]
    ]
    assert _rows(kitchen("runs", "--status", "running").stdout) == [
        ["busy", "dpo_basic", "running", "0", "1"]
    ]
    assert _rows(kitchen("runs", "--status", "completed").stdout) == [
        ["done", "sl_basic", "completed", "2", "1"]
    ]


def test_recipe_filter_and_json(kitchen: Kitchen, runs_db: None) -> None:
    r = kitchen("runs", "--recipe", "dpo_basic", "--json")
    assert r.code == 0
    listed = json.loads(r.stdout)
    assert len(listed) == 1
    row = listed[0]
    stamps = row.pop("created_at"), row.pop("updated_at")
    assert row == {
        "run_id": "busy",
        "recipe": "dpo_basic",
        "status": "running",
        "step": 0,
        "attempts": 1,
        "parent": None,
        "last_seq": 3,
    }
    assert all(datetime.fromisoformat(s).utcoffset() is not None for s in stamps)


def test_json_of_a_derived_status_and_of_no_match(kitchen: Kitchen, runs_db: None) -> None:
    crashed = json.loads(kitchen("runs", "--status", "crashed", "--json").stdout)
    assert [(r["run_id"], r["status"], r["last_seq"]) for r in crashed] == [("gone", "crashed", 3)]
    none = kitchen("runs", "--status", "crashed", "--recipe", "dpo_basic", "--json")
    assert (none.code, json.loads(none.stdout)) == (0, [])


def test_an_empty_database_says_so_on_stderr(kitchen: Kitchen) -> None:
    r = kitchen("runs")
    assert (r.code, r.stdout, r.stderr) == (0, "", "no runs\n")


def test_an_unknown_status_is_a_usage_error(kitchen: Kitchen) -> None:
    r = kitchen("runs", "--status", "sleeping")
    assert r.code == 2
    assert "invalid choice: 'sleeping'" in r.stderr


def test_the_status_choices_are_the_folds() -> None:
    assert STATUSES == FOLD_STATUSES
