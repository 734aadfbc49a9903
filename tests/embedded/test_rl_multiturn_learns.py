"""The promise of rl_multiturn: with no arguments, multi-turn RL visibly teaches the tiny model.

`kitchen run rl_multiturn` through the real CLI, defaults untouched: held-out success within
the turns (`test/accuracy`, greedy, 64 problems) must rise by at least 5 points from the first
evaluation to the last, episodes must take more than one turn, and the mean training reward of
the last 5 steps must exceed the first 5's (README, "Multi-turn RL", has the measured figures).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import replay_json


@pytest.mark.slow
def test_rl_multiturn_defaults_learn(tmp_path: Path) -> None:
    kitchen = make_kitchen(tmp_path / "home")
    r = kitchen("run", "rl_multiturn", "--run-id", "mt-learns", timeout=1800)
    assert r.code == 0, r.stderr
    state = replay_json(kitchen, "mt-learns")["state"]
    evals = {int(k): v for k, v in state["eval_metrics"].items()}
    first, last = evals[min(evals)]["test/accuracy"], evals[max(evals)]["test/accuracy"]
    assert evals[min(evals)]["test/examples"] == 64
    assert last >= first + 0.05, (first, last)
    steps = {int(k): v for k, v in state["step_metrics"].items()}
    assert all(m["env/all/total_turns"] > m["env/all/total_episodes"] for m in steps.values())
    rewards = [steps[s]["env/all/reward/total"] for s in sorted(steps)]
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5, rewards
