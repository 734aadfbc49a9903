"""SIGKILL at every dangerous moment, resume until done: the result is bit-identical.

Each case arms one fault point (``KITCHEN_FAULT``, see kitchen/engine/faults.py) so the first
process kills itself exactly there, then runs ``kitchen resume`` until the run completes. The final
adapter must equal an uninterrupted run's byte for byte, every resume must start from the newest
checkpoint that was valid at that moment, re-execute at most ``save_every`` steps, and the
effective history must hold every optimizer step exactly once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import Kitchen, make_kitchen
from kitchen.testing.runs import SAVE_EVERY, STEPS, adapter_sha, replay_json
from kitchen.testing.runs import SMALL_SL_CONFIG as CONFIG

KILLED = -9

# (first process's fault point, faults armed in the resumes that follow, in order)
POINTS: list[tuple[str, tuple[str, ...]]] = [
    ("stage:load_dataset:before", ()),
    ("stage:init_session:after", ()),
    ("evaluate:mid@1", ()),
    ("stage:set_epoch:after", ()),
    ("stage:get_batch:after@3", ()),
    ("stage:forward_backward:after@7", ()),
    ("stage:optim_step:before@9", ()),
    ("stage:await_future:after@12", ()),
    ("stage:log_step_metrics:before@14", ()),
    ("flush:before@12", ()),
    ("flush:after@20", ()),
    ("append:before_commit@25", ()),
    ("checkpoint:mid_write@1", ()),
    ("checkpoint:after_blob@2", ()),
    ("stage:save_checkpoint:after@2", ()),
    ("checkpoint:mid_write@3", ()),
    ("checkpoint:after_blob@4", ()),
    ("final:mid_write", ()),
    ("stage:save_final_weights:after", ()),
    ("evaluate:mid@2", ()),
    ("stage:cleanup:before", ()),
    # killed again while resuming
    ("stage:get_batch:after@8", ("stage:get_batch:after@4",)),
    ("checkpoint:after_blob@2", ("checkpoint:mid_write@1", "stage:init_session:after")),
]


def kill_and_resume(kitchen: Kitchen, run_id: str, point: str, again: tuple[str, ...]) -> None:
    r = kitchen("run", "sl_basic", *CONFIG, "--run-id", run_id, extra_env={"KITCHEN_FAULT": point})
    assert r.code == KILLED, (point, r.code, r.stderr[-800:])
    for i in range(len(again) + 2):
        env = {"KITCHEN_FAULT": again[i]} if i < len(again) else {}
        r = kitchen("resume", run_id, extra_env=env)
        if i < len(again):
            assert r.code == KILLED, (again[i], r.code, r.stderr[-800:])
        elif r.code == 0:
            return
    raise AssertionError(f"{run_id} did not complete: {r.code} {r.stderr[-800:]}")


def check_history(doc: dict[str, Any]) -> None:
    """Resumes start at the newest valid checkpoint; none redoes more than save_every steps."""
    live: dict[int, int] = {}  # CheckpointSaved seq -> its step
    submitted = -1
    resumes = 0
    for e in doc["events"]:
        p = e["payload"]
        if e["type"] == "CheckpointSaved":
            live[e["seq"]] = p["step"]
        elif e["type"] in ("CheckpointInvalidated", "CheckpointDeleted"):
            live.pop(p["checkpoint_seq"], None)
        elif e["type"] == "StageCompleted" and p["stage"] == "optim_step":
            submitted = max(submitted, p["step"])
        elif e["type"] == "RunResumed":
            resumes += 1
            newest = max(live) if live else None
            assert p["from_checkpoint_seq"] == newest, (e["seq"], live)
            assert p["from_step"] == (live[newest] if newest else 0)
            assert submitted + 1 - p["from_step"] <= SAVE_EVERY, (e["seq"], submitted)
            submitted = p["from_step"] - 1
    assert resumes >= 1
    state = doc["state"]
    assert state["status"] == "completed"
    assert state["optim_steps"] == list(range(STEPS))


def _case(
    home: Path, db_url: str | None, reference: str, point: str, again: tuple[str, ...]
) -> None:
    kitchen = make_kitchen(home, db_url)
    run_id = "kill-" + point.replace(":", "-").replace("@", "-")
    kill_and_resume(kitchen, run_id, point, again)
    assert adapter_sha(home, run_id) == reference
    check_history(replay_json(kitchen, run_id))
    verify = kitchen("replay", run_id, "--verify")
    assert verify.code == 0, verify.stdout[-500:] + verify.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "again"), POINTS, ids=[p + ("+" + "+".join(a) if a else "") for p, a in POINTS]
)
def test_kill_point_on_sqlite(
    tmp_path: Path, reference: str, point: str, again: tuple[str, ...]
) -> None:
    _case(tmp_path / "home", None, reference, point, again)


PG_POINTS = [POINTS[i] for i in (5, 11, 13, 17)]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize(("point", "again"), PG_POINTS, ids=[p for p, _ in PG_POINTS])
def test_kill_point_on_postgres(
    tmp_path: Path, postgres_url: str, reference: str, point: str, again: tuple[str, ...]
) -> None:
    _case(tmp_path / "home", postgres_url, reference, point, again)
