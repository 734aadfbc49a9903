"""SIGKILL a reduced rl_basic at every dangerous moment of a step, resume until done.

The final adapter must equal an uninterrupted run's byte for byte; counted from the log, the
sampler ran once per step at most once that step's rollouts were on record (every later run
of the rollouts stage for that step trained on the record); and ``replay --verify`` passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import RL_STEPS, SMALL_RL_CONFIG, adapter_sha, replay_json, sampled_steps

KILLED = -9

# (first process's fault point, faults armed in the resumes that follow, in order).
# Step s is the (s+1)th hit of a per-step point; checkpoints are saved after steps 2, 4, 6.
POINTS: list[tuple[str, tuple[str, ...]]] = [
    ("rollouts:mid_sampling@2", ()),  # step 1, one group sampled, nothing written
    ("rollouts:after_blob@2", ()),  # step 1's blob written, its record not yet
    ("stage:rollouts:after@4", ()),  # step 3: the record made, not yet committed
    ("stage:compute_advantages:before@2", ()),  # step 1's record committed, no gradient yet
    ("stage:forward_backward:before@4", ()),  # step 3, after a checkpoint
    ("stage:optim_step:after@2", ()),  # mid-step
    ("stage:log_step_metrics:after@5", ()),
    ("checkpoint:mid_write@2", ()),
    ("checkpoint:after_blob@1", ()),  # no checkpoint on record: resume from the start
    ("stage:save_checkpoint:after@2", ()),  # retention decided, not committed
    ("final:mid_write", ()),
    # killed again while resuming
    ("stage:forward_backward:before@4", ("rollouts:mid_sampling@1", "rollouts:after_blob@1")),
]


@pytest.fixture(scope="module")
def rl_reference(tmp_path_factory: pytest.TempPathFactory) -> str:
    home = tmp_path_factory.mktemp("rl-reference")
    r = make_kitchen(home)("run", "rl_basic", *SMALL_RL_CONFIG, "--run-id", "reference")
    assert r.code == 0, r.stderr
    return adapter_sha(home, "reference")


def _kill_and_resume(home: Path, run_id: str, point: str, again: tuple[str, ...]) -> None:
    kitchen = make_kitchen(home)
    env = {"KITCHEN_FAULT": point}
    r = kitchen("run", "rl_basic", *SMALL_RL_CONFIG, "--run-id", run_id, extra_env=env)
    assert r.code == KILLED, (point, r.code, r.stderr[-800:])
    for i in range(len(again) + 2):
        env = {"KITCHEN_FAULT": again[i]} if i < len(again) else {}
        r = kitchen("resume", run_id, extra_env=env)
        if i < len(again):
            assert r.code == KILLED, (again[i], r.code, r.stderr[-800:])
        elif r.code == 0:
            return
    raise AssertionError(f"{run_id} did not complete: {r.code} {r.stderr[-800:]}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "again"), POINTS, ids=[p + ("+" + "+".join(a) if a else "") for p, a in POINTS]
)
def test_rl_kill_point(
    tmp_path: Path, rl_reference: str, point: str, again: tuple[str, ...]
) -> None:
    home = tmp_path / "home"
    run_id = "rl-kill-" + point.replace(":", "-").replace("@", "-")
    _kill_and_resume(home, run_id, point, again)
    assert adapter_sha(home, run_id) == rl_reference
    kitchen = make_kitchen(home)
    doc = replay_json(kitchen, run_id)
    runs = sampled_steps(doc)
    assert sorted(runs) == list(range(RL_STEPS))
    for step, sampled in runs.items():
        # the first committed run is the record; every later one reused it
        assert sampled[0] and not any(sampled[1:]), (step, sampled)
    reused = sum(len(v) - 1 for v in runs.values())
    assert reused >= 1 or point.startswith("final"), runs  # some step trained on its record
    state = doc["state"]
    assert state["status"] == "completed" and state["optim_steps"] == list(range(RL_STEPS))
    assert not state["mismatches"]
    verify = kitchen("replay", run_id, "--verify")
    assert verify.code == 0, verify.stdout[-500:] + verify.stderr
