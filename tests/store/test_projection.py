"""The runs projection's rules, one event at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kitchen.store import RunRow
from kitchen.store.projection import changes, initial_row, project

T0 = datetime(2025, 1, 1, tzinfo=UTC)
T1 = datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("type", "payload", "expected"),
    [
        (
            "RunCreated",
            {"recipe": "sl_basic"},
            {"status": "created", "recipe": "sl_basic", "created_at": T1, "parent": None},
        ),
        ("AttemptStarted", {"attempt": 3}, {"status": "running", "attempts": 3}),
        ("AttemptInterrupted", {"attempt": 1, "step": 5}, {"status": "interrupted", "step": 5}),
        ("RunCompleted", {}, {"status": "completed"}),
        ("RunFailed", {"error": "x"}, {"status": "failed"}),
        ("RunCancelled", {"step": 0}, {"status": "cancelled", "step": 0}),
        ("RunResumed", {"from_step": 4, "step": 9}, {"step": 4}),
        ("StageCompleted", {"step": 7}, {"step": 7}),
        ("StageCompleted", {"step": "7"}, {}),
        ("StageCompleted", {"step": False}, {}),
        ("CheckpointSaved", {"step": 2.0}, {}),
    ],
)
def test_changes(type: str, payload: dict[str, object], expected: dict[str, object]) -> None:
    assert changes(type, payload, 12, T1) == {"last_seq": 12, "updated_at": T1, **expected}


def test_project_from_nothing() -> None:
    row = project(initial_row("r1", T0), "RunCreated", {"recipe": "dpo"}, 1, T0)
    assert row == RunRow("r1", "dpo", "created", T0, T0, 1, 0, None)
    row = project(row, "AttemptStarted", {"attempt": 1}, 2, T1)
    assert row == RunRow("r1", "dpo", "running", T0, T1, 2, 1, None)
