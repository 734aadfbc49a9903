"""SIGKILL at every dangerous moment, resume until done: the result is bit-identical.

Every fault point (``KITCHEN_FAULT``, see kitchen/engine/faults.py) is armed exactly once and
must fire (exit -9). Points are chained, several to one run, because each ``kitchen`` process
imports torch and opens the model (seconds) while a kill costs nothing: the run is killed at
the chain's first point, the resume that follows at its second, and so on; the last resume
completes. So resumes are killed too, from the start and from a checkpoint, not only runs.

``@N`` counts in the process the point is armed in, and a resume starts from the newest valid
checkpoint, so each point is placed where it is sure to fire: set-up and teardown points
anywhere, a point counted in steps (or commits) in a process with enough steps ahead, and a
point that needs a run from step 0 (the start evaluation, ``set_epoch``, the fourth
checkpoint, the second evaluation) in a process that starts from step 0. The comments say
where each one fires in its chain (SMALL_SL_CONFIG: 20 steps, checkpoints after steps 5, 10,
15 and the final one at 20; evaluations at the start and the end).

Whatever the chain, the final adapter must equal an uninterrupted run's byte for byte, every
resume must start from the newest checkpoint that was valid at that moment and re-execute at
most ``save_every`` steps, the effective history must hold every optimizer step exactly once,
and ``replay --verify`` must pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import SAVE_EVERY, STEPS, adapter_sha, kill_chain, replay_json
from kitchen.testing.runs import SMALL_SL_CONFIG as CONFIG

# Each chain: the fault points of the run and of the resumes after it, in order.
# [from → to]: the step the process starts from → the one the next resume starts from.
CHAINS: list[tuple[str, ...]] = [
    (
        "evaluate:mid@1",  # the start evaluation [0 → 0]
        "stage:set_epoch:after",  # only a run from step 0 sets the epoch [0 → 0]
        "checkpoint:after_blob@4",  # the final checkpoint's blob, no record [0 → 15]
        "final:mid_write",  # the final weights half written [15 → 20]
    ),
    (
        "stage:load_dataset:before",  # nothing on record but the attempt [0 → 0]
        "evaluate:mid@2",  # the end evaluation of a run from step 0 [0 → 20]
        "stage:save_final_weights:after",  # weights written, not committed [20 → 20]
        "stage:cleanup:before",  # the last stage [20 → 20]
    ),
    (
        "checkpoint:mid_write@1",  # the first checkpoint torn, none valid [0 → 0]
        "append:before_commit@25",  # step 10's checkpoint record inserted, not committed [0 → 5]
        "stage:await_future:after@12",  # step 16, results taken, not committed [5 → 15]
        "stage:init_session:after",  # a set-up stage of a resume from a checkpoint [15 → 15]
    ),
    (
        "stage:get_batch:after@3",  # step 2, before any checkpoint [0 → 0]
        "stage:save_checkpoint:after@2",  # step 10's checkpoint written, not committed [0 → 5]
        "stage:log_step_metrics:before@14",  # step 18, metrics not logged [5 → 15]
    ),
    (
        "flush:before@12",  # the commit before the first step [0 → 0]
        "checkpoint:mid_write@3",  # step 15's checkpoint torn, two older valid [0 → 10]
        "stage:forward_backward:after@7",  # step 16, gradients taken, no optimizer step [10 → 15]
    ),
    (
        "checkpoint:after_blob@2",  # step 10's checkpoint blob, no record [0 → 5]
        "stage:optim_step:before@9",  # step 13, mid-step [5 → 10]
        "flush:after@20",  # a commit made, the process killed at once [10 → 15]
    ),
]


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
    home: Path,
    db_url: str | None,
    reference: str,
    points: tuple[str, ...],
    env: dict[str, str] | None = None,
) -> None:
    kitchen = make_kitchen(home, db_url)
    run_id = "kill-" + points[0].replace(":", "-").replace("@", "-")
    kill_chain(kitchen, ("sl_basic", *CONFIG), run_id, points, env)
    assert adapter_sha(home, run_id) == reference
    doc = replay_json(kitchen, run_id)
    assert sum(e["type"] == "RunResumed" for e in doc["events"]) == len(points)
    check_history(doc)
    verify = kitchen("replay", run_id, "--verify")
    assert verify.code == 0, verify.stdout[-500:] + verify.stderr


@pytest.mark.slow
@pytest.mark.parametrize("points", CHAINS, ids=["+".join(c) for c in CHAINS])
def test_kill_points_on_sqlite(tmp_path: Path, reference: str, points: tuple[str, ...]) -> None:
    _case(tmp_path / "home", None, reference, points)


# The moments a Postgres log could handle differently from SQLite: a transaction killed with its
# rows inserted, a checkpoint's record that never came, a kill mid-step (work in flight), the
# final weights half written.
PG_CHAIN = (
    "append:before_commit@25",  # step 10's checkpoint record inserted, not committed [0 → 5]
    "checkpoint:after_blob@2",  # step 15's checkpoint blob, no record [5 → 10]
    "stage:forward_backward:after@7",  # step 16 [10 → 15]
    "final:mid_write",  # [15 → 20]
)


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_points_on_postgres(tmp_path: Path, postgres_url: str, reference: str) -> None:
    # Every step its own commit: a count of appends (append:before_commit@25) then names the
    # same moment however fast the steps run (a commit window groups fast steps).
    _case(tmp_path / "home", postgres_url, reference, PG_CHAIN, {"KITCHEN_COMMIT_WINDOW_MS": "0"})
