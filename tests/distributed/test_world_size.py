"""A run resumed on another number of processes: 2 -> 1 and 1 -> 2.

The data of a step is keyed by the global step and example index, never by rank, so the
resumed attempt trains the same examples in the same steps; the float sums run in another
order, so the re-executed steps agree with the log within the changed-setting tolerance (no
``DeterminismMismatch``), the change is on record (``kitchen show``: ``backend world_size``),
and the final losses agree with an uninterrupted run on one process within float summation.
RL resumed on another world size samples its later steps on other weights' last bits: its
recorded rollouts are reused and no optimizer step is applied twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import Kitchen, make_kitchen, make_torchrun
from kitchen.testing.dpo import small_dpo_config, write_pairs
from kitchen.testing.runs import SMALL_RL_CONFIG, replay_json

pytestmark = pytest.mark.slow

SL = ["max_steps=6", "save_every=3", "batch_size=8", "max_length=64", "eval_examples=4"]
RL = [*SMALL_RL_CONFIG, "max_steps=4"]  # the RL crash tests' shape, 4 steps
ENV = {"KITCHEN_DIST_TIMEOUT_S": "60"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("world-size") / "home"


@pytest.fixture(scope="module")
def one(home: Path) -> Kitchen:
    return make_kitchen(home)


@pytest.fixture(scope="module")
def two(home: Path) -> Kitchen:
    return make_torchrun(home, nproc=2, max_restarts=0)


def _ok(r: Any) -> None:
    assert r.code == 0, f"exit {r.code}\n{r.stderr[-3000:]}"


def _state(kitchen: Kitchen, run_id: str) -> dict[str, Any]:
    return dict(replay_json(kitchen, run_id)["state"])


def _losses(state: dict[str, Any], metric: str) -> dict[int, float]:
    return {int(k): float(v[metric]) for k, v in state["step_metrics"].items()}


def _crash_then_resume(
    one: Kitchen, two: Kitchen, recipe: str, config: list[str], run_id: str, first: int
) -> dict[str, Any]:
    """Start on ``first`` processes, killed after the fifth optimizer step; resume on the other
    number of processes."""
    start, resume = (two, one) if first == 2 else (one, two)
    point = "stage:optim_step:after@5"
    fault = {**ENV, "KITCHEN_FAULT": f"rank0/{point}" if first == 2 else point}
    r = start("run", recipe, *config, "--run-id", run_id, timeout=600, extra_env=fault)
    assert r.code != 0
    _ok(resume("resume", run_id, timeout=600, extra_env=ENV))
    state = _state(one, run_id)
    assert state["status"] == "completed"
    assert state["mismatches"] == []  # re-executed steps within the changed-setting tolerance
    assert state["optim_steps"] == sorted(set(state["optim_steps"]))  # none applied twice
    shown = one("show", run_id).stdout
    assert f"backend world_size {first} -> {3 - first}" in shown, shown
    return state


@pytest.fixture(scope="module")
def sl_ref(one: Kitchen) -> dict[int, float]:
    """The uninterrupted run on one process."""
    _ok(one("run", "sl_basic", *SL, "--run-id", "sl-ref", timeout=600))
    return _losses(_state(one, "sl-ref"), "train_mean_nll")


@pytest.mark.parametrize("first", [2, 1])
def test_supervised_resumes_on_another_world_size(
    one: Kitchen, two: Kitchen, first: int, sl_ref: dict[int, float]
) -> None:
    state = _crash_then_resume(one, two, "sl_basic", SL, f"sl-from-{first}", first)
    ref = sl_ref
    got = _losses(state, "train_mean_nll")
    assert sorted(got) == sorted(ref)
    for step in ref:
        assert got[step] == pytest.approx(ref[step], rel=1e-3), (step, ref, got)


@pytest.mark.parametrize("first", [2, 1])
def test_dpo_resumes_on_another_world_size(
    one: Kitchen, two: Kitchen, first: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = small_dpo_config(write_pairs(tmp_path_factory.mktemp("pairs") / "pairs.jsonl"))
    state = _crash_then_resume(one, two, "dpo_basic", config, f"dpo-from-{first}", first)
    assert sorted(_losses(state, "dpo_loss")) == list(range(6))


def test_rl_resumed_on_one_process_reuses_its_rollouts(one: Kitchen, two: Kitchen) -> None:
    fault = {**ENV, "KITCHEN_FAULT": "rank0/stage:forward_backward:before@4"}
    r = two("run", "rl_basic", *RL, "--run-id", "rl-2-1", timeout=600, extra_env=fault)
    assert r.code != 0
    _ok(one("resume", "rl-2-1", timeout=600))
    r = one("replay", "rl-2-1", "--json", "--all")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    state = doc["state"]
    assert state["status"] == "completed"
    assert state["optim_steps"] == [0, 1, 2, 3]
    rollouts = [
        e for e in doc["events"] if e["type"] == "StageCompleted" and e["stage"] == "rollouts"
    ]
    first_attempt = {e["step"] for e in rollouts if e["seq"] < state["attempts"][1]["started_seq"]}
    again = [e for e in rollouts if e["seq"] > state["attempts"][1]["started_seq"]]
    reused = [e["step"] for e in again if e["step"] in first_attempt]
    assert reused, again  # the resume re-executed steps whose rollouts were on record ...
    assert all(not e["payload"]["outputs"]["sampled"] for e in again if e["step"] in reused)
