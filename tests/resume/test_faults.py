"""A full disk or quota through the real ``kitchen`` CLI: exit 75, one line, resumable; then
``kitchen resume`` with the fault gone gives the same bytes as an uninterrupted run.

The fault is injected inside the real write (``KITCHEN_FAULT=POINT@N=ENOSPC``, see
kitchen/engine/faults.py): the first attempt's Nth pass through that write raises the ``OSError`` a
full disk raises, and the real error handling (the blob store, ``metrics.jsonl``'s append, the
runner) does the rest. A diverged loss, an error of the run itself, stays terminal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kitchen.testing.cli import Kitchen, Result, make_kitchen
from kitchen.testing.runs import SMALL_SL_CONFIG as CONFIG
from kitchen.testing.runs import adapter_sha, replay_json

pytestmark = pytest.mark.slow
TEMPFAIL = 75


def fault_line(r: Result, kind: str) -> str:
    """Exit 75 and exactly one line naming the fault; no traceback, no RunFailed summary."""
    assert r.code == TEMPFAIL, (r.code, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "fault (" in ln]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"  fault ({kind}): "), lines[0]
    assert "error:" not in r.stderr, r.stderr
    return lines[0]


def status(kitchen: Kitchen, run_id: str) -> str:
    r = kitchen("runs", "--json")
    assert r.code == 0, r.stderr
    return str({row["run_id"]: row["status"] for row in json.loads(r.stdout)}[run_id])


@pytest.mark.parametrize(
    ("point", "says", "stage"),
    [
        (
            "checkpoint:mid_write@2=ENOSPC",
            "/disk/checkpoints/step-000010: No space left on device; free space and resume",
            "save_checkpoint",
        ),
        (
            "metrics:write@7=EDQUOT",
            "Disk quota exceeded; free space and resume",
            "log_step_metrics",
        ),
        (
            "final:mid_write=ENOSPC",
            "/disk/final: No space left on device; free space and resume",
            "save_final_weights",
        ),
    ],
    ids=["checkpoint", "metrics", "final-weights"],
)
def test_a_full_disk_ends_the_attempt_resumable(
    tmp_path: Path, reference: str, point: str, says: str, stage: str
) -> None:
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    r = kitchen("run", "sl_basic", *CONFIG, "--run-id", "disk", extra_env={"KITCHEN_FAULT": point})
    line = fault_line(r, "disk_full")
    assert says in line
    assert "continue with: kitchen resume disk" in r.stderr
    assert status(kitchen, "disk") == "interrupted"

    events = replay_json(kitchen, "disk")["events"]
    last = events[-1]
    assert (last["type"], last["schema_version"]) == ("AttemptInterrupted", 2)
    assert last["payload"]["fault"] == "disk_full"
    assert last["payload"]["stage"] == stage
    assert says in last["payload"]["reason"]
    assert "signal" not in last["payload"]
    assert not [e for e in events if e["type"] in ("RunFailed", "StageFailed")]
    shown = kitchen("show", "disk")
    assert "stopped by a fault (disk_full), resumable:" in shown.stdout

    r = kitchen("resume", "disk")
    assert r.code == 0, r.stderr[-2000:]
    assert status(kitchen, "disk") == "completed"
    assert adapter_sha(home, "disk") == reference
    # metrics.jsonl never holds a torn line, even when the append itself hit the full disk.
    for text in (home / "disk" / "metrics.jsonl").read_text().splitlines():
        json.loads(text)
    assert not list((home / "disk").rglob(".*kitchen-tmp*"))  # no temp folder left behind


def test_a_diverged_loss_stays_terminal(tmp_path: Path) -> None:
    kitchen = make_kitchen(tmp_path / "home")
    r = kitchen("run", "sl_basic", *CONFIG, "learning_rate=1e30", "--run-id", "nan")
    assert r.code == 1, r.stderr[-2000:]
    assert "error: TrainingDiverged: " in r.stderr
    assert "fault (" not in r.stderr
    assert status(kitchen, "nan") == "failed"
    r = kitchen("resume", "nan")
    assert r.code == 2
    assert "is failed; there is nothing to resume" in r.stderr
