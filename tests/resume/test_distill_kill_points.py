"""SIGKILL a reduced distill_on_policy run at the dangerous moments of a step, resume until
done: the final adapter equals an uninterrupted run's byte for byte, and each step's student
samples, once on record, are trained on rather than drawn again."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import (
    ON_POLICY_STEPS,
    SMALL_ON_POLICY_CONFIG,
    SMALL_SL_CONFIG,
    adapter_sha,
    replay_json,
    sampled_steps,
)

KILLED = -9

# Step s is the (s+1)th hit of a per-step point; the checkpoints hold 2 and 4 steps.
POINTS = [
    "rollouts:after_blob@2",  # step 1's blob written, its record not yet
    "stage:rollouts:after@2",  # step 1's record made, not yet committed
    "stage:compute_advantages:before@2",  # step 1's record committed, the teacher not asked yet
    "stage:optim_step:after@4",  # step 3, after a checkpoint
    "checkpoint:after_blob@1",  # no checkpoint on record: resume from the start
]


@pytest.fixture(scope="module")
def taught(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A home holding a small sl_basic teacher and an uninterrupted student's adapter sha."""
    home = tmp_path_factory.mktemp("distill")
    kitchen = make_kitchen(home)
    r = kitchen("run", "sl_basic", *SMALL_SL_CONFIG, "max_steps=6", "--run-id", "teacher")
    assert r.code == 0, r.stderr
    r = kitchen(
        "run", "distill_on_policy", *SMALL_ON_POLICY_CONFIG, "teacher_checkpoint=run:teacher",
        "--run-id", "reference",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    return home, adapter_sha(home, "reference")


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_distill_kill_point(taught: tuple[Path, str], point: str) -> None:
    home, reference = taught
    kitchen = make_kitchen(home)
    run_id = "kill-" + point.replace(":", "-").replace("@", "-")
    r = kitchen(
        "run", "distill_on_policy", *SMALL_ON_POLICY_CONFIG, "teacher_checkpoint=run:teacher",
        "--run-id", run_id, extra_env={"KITCHEN_FAULT": point},
    )  # fmt: skip
    assert r.code == KILLED, (point, r.code, r.stderr[-800:])
    r = kitchen("resume", run_id)
    assert r.code == 0, r.stderr[-800:]
    assert adapter_sha(home, run_id) == reference
    doc = replay_json(kitchen, run_id)
    runs = sampled_steps(doc)
    assert sorted(runs) == list(range(ON_POLICY_STEPS))
    for step, sampled in runs.items():
        assert sampled[0] and not any(sampled[1:]), (step, sampled)
    state = doc["state"]
    assert state["status"] == "completed"
    assert state["optim_steps"] == list(range(ON_POLICY_STEPS))
    assert not state["mismatches"]
    verify = kitchen("replay", run_id, "--verify")
    assert verify.code == 0, verify.stdout[-500:] + verify.stderr
