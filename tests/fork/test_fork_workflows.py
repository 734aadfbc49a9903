"""kitchen fork on DPO, RL and on-policy distillation: what each carries across the fork point
(the reference, the recorded rollouts, the teacher), the same adapter as the parent with no
override, and a new learning rate that changes only the steps after the fork point."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import Kitchen, make_kitchen, one_line_error
from kitchen.testing.dpo import small_dpo_config, write_pairs
from kitchen.testing.runs import (
    SMALL_SL_CONFIG,
    adapter_sha,
    created_payload,
    replay_json,
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

ON_POLICY_CONFIG = [
    "max_steps=4",
    "save_every=2",
    "eval_every=0",
    "group_size=2",
    "groups_per_batch=4",
    "max_tokens=4",
    "eval_examples=4",
    "eval_max_tokens=4",
    "teacher_checkpoint=run:teacher",
]


def _stages(kitchen: Kitchen, run_id: str, stage: str) -> list[dict[str, object]]:
    return [
        e["payload"]["outputs"]
        for e in replay_json(kitchen, run_id)["events"]
        if e["type"] == "StageCompleted" and e["payload"]["stage"] == stage
    ]


def test_dpo_forks_keep_the_parents_reference(tmp_path: Path) -> None:
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    config = small_dpo_config(write_pairs(tmp_path / "pairs.jsonl"))
    assert kitchen("run", "dpo_basic", *config, "--run-id", "d").code == 0
    assert kitchen("fork", "d@4", "--run-id", "d4").code == 0  # a checkpoint (every 2 steps)
    between = kitchen("fork", "d@3", "learning_rate=0.0003", "--run-id", "d3lr")
    assert between.code == 0, between.stderr
    assert adapter_sha(home, "d4") == adapter_sha(home, "d")
    assert adapter_sha(home, "d3lr") != adapter_sha(home, "d")

    # the reference is the parent's, copied into the fork's folder and read back, never
    # recomputed from the weights at the fork point
    parent_ref = [
        a
        for e in replay_json(kitchen, "d")["events"]
        if e["type"] == "StageCompleted"
        for a in e["payload"].get("artifacts", [])
        if a["kind"] == "reference_logprobs"
    ]
    for fork_id in ("d4", "d3lr"):
        carried = created_payload(kitchen, fork_id)["payload"]["fork"]["artifacts"]
        assert [(a["kind"], a["sha256"]) for a in carried] == [
            ("reference_logprobs", parent_ref[0]["sha256"])
        ]
        assert carried[0]["uri"] == f"{fork_id}/artifacts/reference_logprobs/logprobs.safetensors"
        assert [o["computed"] for o in _stages(kitchen, fork_id, "compute_reference_logprobs")] == [
            False
        ]
    parent, child = step_metrics(kitchen, "d"), step_metrics(kitchen, "d3lr")
    assert child[3]["dpo_loss"] == parent[3]["dpo_loss"]  # the parent's state at step 3
    assert child[4]["dpo_loss"] != parent[4]["dpo_loss"]


def test_rl_forks_from_a_checkpoint_from_the_start_and_between(tmp_path: Path) -> None:
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    assert kitchen("run", "rl_basic", *RL_CONFIG, "--run-id", "r").code == 0
    assert kitchen("fork", "r@2", "--run-id", "r2").code == 0
    # no live checkpoint before step 1: re-executed from the run's start
    from_start = kitchen("fork", "r@1", "--run-id", "r1")
    assert from_start.code == 0, from_start.stderr
    assert created_payload(kitchen, "r1")["payload"]["fork"]["from_step"] == 0
    lr = kitchen("fork", "r@3", "learning_rate=0.05", "--run-id", "r3lr")
    assert lr.code == 0, lr.stderr
    want = adapter_sha(home, "r")
    assert (adapter_sha(home, "r2"), adapter_sha(home, "r1")) == (want, want)
    assert adapter_sha(home, "r3lr") != want
    # step 3 re-executed from checkpoint 2 on its recorded rollouts; the fork samples its own
    assert created_payload(kitchen, "r3lr")["payload"]["fork"]["reexecuted"] == 1
    assert [o["sampled"] for o in _stages(kitchen, "r3lr", "rollouts")] == [True]
    parent, child = step_metrics(kitchen, "r"), step_metrics(kitchen, "r3lr")
    assert child[3]["optim/loss"] == parent[3]["optim/loss"]
    assert child[3]["env/all/reward/total"] == parent[3]["env/all/reward/total"]
    assert child[3]["learning_rate"] != parent[3]["learning_rate"]


def test_on_policy_distillation_forks_and_a_changed_teacher(tmp_path: Path) -> None:
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    teacher = kitchen("run", "sl_basic", *SMALL_SL_CONFIG, "max_steps=6", "--run-id", "teacher")
    assert teacher.code == 0, teacher.stderr
    assert kitchen("run", "distill_on_policy", *ON_POLICY_CONFIG, "--run-id", "s").code == 0
    assert kitchen("fork", "s@2", "--run-id", "s2").code == 0
    between = kitchen("fork", "s@3", "--run-id", "s3")
    assert between.code == 0, between.stderr
    want = adapter_sha(home, "s")
    assert (adapter_sha(home, "s2"), adapter_sha(home, "s3")) == (want, want)
    lineage = created_payload(kitchen, "s3")["payload"]["lineage"]
    assert [(x["role"], x["run_id"]) for x in lineage] == [("teacher", "teacher")]

    line = one_line_error(kitchen("fork", "s@3", "teacher_checkpoint=run:s2"))
    assert "'teacher_checkpoint' cannot change at a fork" in line
    before = sorted(p.name for p in home.iterdir())
    weights = home / "teacher" / "final" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes() + b"\0")
    line = one_line_error(kitchen("fork", "s@3", "--run-id", "s3x"))
    assert "teacher weights 'run:teacher' changed since the run was created" in line
    assert sorted(p.name for p in home.iterdir()) == before
