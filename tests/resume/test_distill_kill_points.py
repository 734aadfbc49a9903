"""SIGKILL a reduced distill_on_policy run at the dangerous moments of a step, resume until
done: the final adapter equals an uninterrupted run's byte for byte, and each step's student
samples, once on record, are trained on rather than drawn again.

The moments are those around the student's samples and the teacher's scoring of them. They are
chained in one run (each process imports torch and opens both models): the run is killed at
the first point, each resume at the next, and the last resume completes. Kills at the engine's
own points (mid-step, mid-checkpoint) would repeat the sl_basic chains in test_kill_points.py
and are left to them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import (
    ON_POLICY_STEPS,
    SMALL_ON_POLICY_CONFIG,
    SMALL_SL_CONFIG,
    adapter_sha,
    card_as,
    kill_chain,
    replay_json,
    sampled_steps,
)

# The points in the order they are armed: the run, then each resume. Step s is the (s+1)th hit
# of a per-step point in a run from the start; rollouts points fire only in steps that sample
# (a step whose samples are on record trains on them). The checkpoints hold 2 and 4 steps.
# [from → to]: the step the process starts from → the one the next resume starts from.
CHAIN = (
    "rollouts:after_blob@2",  # step 1's blob written, its record not yet [0 → 0]
    "stage:rollouts:after@2",  # step 1 sampled again, its record made, not committed [0 → 0]
    # step 1's record committed, the teacher not asked yet: the resume scores the recorded
    # samples, not new ones [0 → 0]
    "stage:compute_advantages:before@2",
)


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
@pytest.mark.parametrize("points", [CHAIN], ids=["+".join(CHAIN)])
def test_distill_kill_points(taught: tuple[Path, str], points: tuple[str, ...]) -> None:
    home, reference = taught
    kitchen = make_kitchen(home)
    run_id = "kill-chain"
    config = (*SMALL_ON_POLICY_CONFIG, "teacher_checkpoint=run:teacher")
    kill_chain(kitchen, ("distill_on_policy", *config), run_id, points)
    assert adapter_sha(home, run_id) == reference
    assert card_as(home, run_id, "reference") == card_as(home, "reference", "reference")
    doc = replay_json(kitchen, run_id)
    runs = sampled_steps(doc)
    assert sorted(runs) == list(range(ON_POLICY_STEPS))
    for step, sampled in runs.items():
        assert sampled[0] and not any(sampled[1:]), (step, sampled)
    assert sum(len(v) - 1 for v in runs.values()) >= 1, runs  # some step trained on its record
    state = doc["state"]
    assert state["status"] == "completed"
    assert state["optim_steps"] == list(range(ON_POLICY_STEPS))
    assert not state["mismatches"]
    verify = kitchen("replay", run_id, "--verify")
    assert verify.code == 0, verify.stdout[-500:] + verify.stderr
