"""The promise of rl_basic: with no arguments, RL visibly teaches the tiny model.

`kitchen run rl_basic` through the real CLI, defaults untouched: held-out greedy exact match
(`test/accuracy`, 64 problems) must rise by at least 10 points (7 problems) from the first
evaluation to the last, and the mean training reward of the last 5 steps must exceed the first
5's. The run measures 13/64 -> 23/64 (+15.6 points) over its two epochs: the first teaches the
"largest digit" problems (19/64, where 60-step runs and TRL's GRPOTrainer stop), the second
starts counting letters (see README and bench/README.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import replay_json


@pytest.mark.slow
def test_rl_basic_defaults_learn(tmp_path: Path) -> None:
    kitchen = make_kitchen(tmp_path / "home")
    r = kitchen("run", "rl_basic", "--run-id", "rl-learns", timeout=1800)
    assert r.code == 0, r.stderr
    state = replay_json(kitchen, "rl-learns")["state"]
    evals = {int(k): v for k, v in state["eval_metrics"].items()}
    first, last = evals[min(evals)]["test/accuracy"], evals[max(evals)]["test/accuracy"]
    assert evals[min(evals)]["test/examples"] == 64
    assert last >= first + 0.10, (first, last)
    steps = {int(k): v for k, v in state["step_metrics"].items()}
    rewards = [steps[s]["env/all/reward/total"] for s in sorted(steps)]
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5, rewards
