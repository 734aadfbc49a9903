"""SIGKILL a reduced rl_basic at the dangerous moments of its rollouts, resume until done.

The moments are RL's own: while sampling, between the rollouts blob and its record, the record
made but not committed, the record committed with no gradient yet, and the retention of old
rollouts decided but not committed. They are chained, several to one run (each process imports
torch and opens the model): the run is killed at a chain's first point, each resume at the
next, and the last resume completes, so resumes that re-execute recorded steps are killed too.
Kills at the engine's own points (mid-step, mid-checkpoint, the final save) would repeat the
sl_basic chains in test_kill_points.py and are left to them.

The final adapter must equal an uninterrupted run's byte for byte; counted from the log, the
sampler ran once per step at most once that step's rollouts were on record (every later run
of the rollouts stage for that step trained on the record); and ``replay --verify`` passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import (
    RL_STEPS,
    SMALL_RL_CONFIG,
    adapter_sha,
    card_as,
    kill_chain,
    replay_json,
    sampled_steps,
)

# The points of each chain in the order they are armed: the run, then each resume. Step s is
# the (s+1)th hit of a per-step point in a run from the start; the rollouts points fire only
# in steps that sample (a step whose rollouts are on record trains on them). Checkpoints are
# saved after steps 2, 4 and 6 (the final one); the one after step 2 deletes the rollouts of
# steps 0-1, the final one the checkpoint of step 2 and the rollouts of steps 2-3.
# [from → to]: the step the process starts from → the one the next resume starts from.
CHAINS: list[tuple[str, ...]] = [
    (
        "rollouts:after_blob@2",  # step 1's blob written, its record not yet [0 → 0]
        # step 0 on record, step 1 sampled again; killed while sampling step 2 [0 → 2]
        "rollouts:mid_sampling@2",
        # the final checkpoint and its retention decided, not committed [2 → 4]
        "stage:save_checkpoint:after@2",
    ),
    (
        "stage:compute_advantages:before@2",  # step 1's record committed, no gradient [0 → 0]
        # steps 0-1 on record, 2-3 sampled; step 3's record made, not committed [0 → 2]
        "stage:rollouts:after@4",
    ),
]


@pytest.fixture(scope="module")
def rl_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The KITCHEN_HOME of an uninterrupted run, run id ``reference``."""
    home = tmp_path_factory.mktemp("rl-reference")
    r = make_kitchen(home)("run", "rl_basic", *SMALL_RL_CONFIG, "--run-id", "reference")
    assert r.code == 0, r.stderr
    return home


@pytest.mark.slow
@pytest.mark.parametrize("points", CHAINS, ids=["+".join(c) for c in CHAINS])
def test_rl_kill_points(tmp_path: Path, rl_reference: Path, points: tuple[str, ...]) -> None:
    home = tmp_path / "home"
    run_id = "rl-kill-" + points[0].replace(":", "-").replace("@", "-")
    kitchen = make_kitchen(home)
    kill_chain(kitchen, ("rl_basic", *SMALL_RL_CONFIG), run_id, points)
    assert adapter_sha(home, run_id) == adapter_sha(rl_reference, "reference")
    assert card_as(home, run_id, "reference") == card_as(rl_reference, "reference", "reference")
    doc = replay_json(kitchen, run_id)
    runs = sampled_steps(doc)
    assert sorted(runs) == list(range(RL_STEPS))
    for step, sampled in runs.items():
        # the first committed run is the record; every later one reused it
        assert sampled[0] and not any(sampled[1:]), (step, sampled)
    reused = sum(len(v) - 1 for v in runs.values())
    assert reused >= 1, runs  # some step trained on its record
    state = doc["state"]
    assert state["status"] == "completed" and state["optim_steps"] == list(range(RL_STEPS))
    assert not state["mismatches"]
    verify = kitchen("replay", run_id, "--verify")
    assert verify.code == 0, verify.stdout[-500:] + verify.stderr
