"""kitchen fork on rl_basic: from a checkpoint, from the run's start, and between checkpoints on
the recorded rollouts; a new learning rate changes the steps after the fork point."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import (
    adapter_sha,
    created_payload,
    events_of,
    step_metrics,
)

pytestmark = pytest.mark.slow

RL_CONFIG = [
    "max_steps=4",
    "save_every=2",
    "keep_checkpoints=2",
    "eval_every=0",
    "group_size=4",
    "groups_per_batch=4",
    "max_tokens=4",
    "eval_examples=4",
    "eval_max_tokens=4",
]
"""4 steps, checkpoints at 2 and (final) 4; rollouts of steps 0-1 deleted by retention."""


def _stages(home: Path, run_id: str, stage: str) -> list[dict[str, object]]:
    return [
        e["payload"]["outputs"]
        for e in events_of(home, run_id)
        if e["type"] == "StageCompleted" and e["payload"]["stage"] == stage
    ]


def test_rl_forks_from_a_checkpoint_from_the_start_and_between(tmp_path: Path) -> None:
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    assert kitchen("run", "rl_basic", *RL_CONFIG, "--run-id", "r").code == 0
    assert kitchen("fork", "r@2", "--run-id", "r2").code == 0
    # no live checkpoint before step 1: re-executed from the run's start
    from_start = kitchen("fork", "r@1", "--run-id", "r1")
    assert from_start.code == 0, from_start.stderr
    assert created_payload(home, "r1")["payload"]["fork"]["from_step"] == 0
    lr = kitchen("fork", "r@3", "learning_rate=0.05", "--run-id", "r3lr")
    assert lr.code == 0, lr.stderr
    want = adapter_sha(home, "r")
    assert (adapter_sha(home, "r2"), adapter_sha(home, "r1")) == (want, want)
    assert adapter_sha(home, "r3lr") != want
    # step 3 re-executed from checkpoint 2 on its recorded rollouts; the fork samples its own
    assert created_payload(home, "r3lr")["payload"]["fork"]["reexecuted"] == 1
    assert [o["sampled"] for o in _stages(home, "r3lr", "rollouts")] == [True]
    parent, child = step_metrics(home, "r"), step_metrics(home, "r3lr")
    assert child[3]["optim/loss"] == parent[3]["optim/loss"]
    assert child[3]["env/all/reward/total"] == parent[3]["env/all/reward/total"]
    assert child[3]["learning_rate"] != parent[3]["learning_rate"]
