"""`kitchen run rl_basic` end to end through the real CLI: stages, rollouts on record,
retention of old rollouts, metrics, and the audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kitchen.testing.cli import Kitchen
from kitchen.testing.runs import RL_STEPS, SMALL_RL_CONFIG, replay_json, sampled_steps

RL_STAGES = {
    "load_dataset",
    "init_session",
    "init_tokenizer",
    "build_env",
    "rollouts",
    "compute_advantages",
    "forward_backward",
    "optim_step",
    "await_future",
    "log_step_metrics",
    "save_checkpoint",
    "save_final_weights",
    "evaluate",
    "cleanup",
}
METRICS = {
    "env/all/reward/total",
    "env/all/correct",
    "env/all/format",
    "env/all/by_group/frac_mixed",
    "env/all/by_group/frac_all_good",
    "env/all/by_group/frac_all_bad",
    "env/all/total_ac_tokens",
    "optim/kl_sample_train_v1",
    "optim/kl_sample_train_v2",
    "optim/entropy",
    "optim/loss",
    "learning_rate",
}


@pytest.mark.slow
def test_rl_basic_on_sqlite(kitchen: Kitchen, home: Path) -> None:
    r = kitchen("run", "rl_basic", *SMALL_RL_CONFIG, "--run-id", "rl-e2e")
    assert r.code == 0, r.stderr
    assert r.stdout.splitlines()[0] == "rl-e2e"
    assert f"completed after {RL_STEPS} steps" in r.stderr
    assert "test/accuracy" in r.stderr

    doc = replay_json(kitchen, "rl-e2e")
    stages = {e["payload"]["stage"] for e in doc["events"] if e["type"] == "StageCompleted"}
    assert stages == RL_STAGES
    assert sampled_steps(doc) == {step: [True] for step in range(RL_STEPS)}
    state = doc["state"]
    assert state["status"] == "completed" and state["optim_steps"] == list(range(RL_STEPS))
    assert sorted(int(s) for s in state["step_metrics"]) == list(range(RL_STEPS))
    assert set(state["step_metrics"]["0"]) >= METRICS
    assert {"test/accuracy", "test/format"} <= set(state["eval_metrics"]["0"])
    assert sorted(int(s) for s in state["eval_metrics"]) == [0, RL_STEPS]

    # checkpoints at 2, 4, 6 keeping two: the rollouts of steps before 4 are deleted
    deleted = [e["payload"] for e in doc["events"] if e["type"] == "ArtifactDeleted"]
    assert sorted(p["uri"] for p in deleted) == [
        f"rl-e2e/artifacts/rollouts/step-{s:06d}.json" for s in range(4)
    ]
    assert all(p["kind"] == "rollouts" for p in deleted)
    left = sorted(p.name for p in (home / "rl-e2e" / "artifacts" / "rollouts").iterdir())
    assert left == ["step-000004.json", "step-000005.json"]

    verify = kitchen("replay", "rl-e2e", "--verify")
    assert verify.code == 0, verify.stdout + verify.stderr
    assert "2 artifacts" in verify.stdout  # the rollouts still kept

    lines = (home / "rl-e2e" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == list(range(RL_STEPS))
    blob = json.loads((home / "rl-e2e" / "artifacts" / "rollouts" / "step-000005.json").read_text())
    assert blob["step"] == 5 and len(blob["groups"]) == 4
    assert all(len(g["trajectories"]) == 4 for g in blob["groups"])


def test_bad_rl_settings_are_one_line_and_write_nothing(kitchen: Kitchen, home: Path) -> None:
    from kitchen.testing.cli import one_line_error

    for args in (["loss_fn=dpo"], ["group_size=0"], ["env=not a name"]):
        r = kitchen("run", "rl_basic", *args, "--run-id", "bad")
        assert r.code == 2, (args, r.stderr)
        one_line_error(r)
    assert not (home / "bad").exists()


@pytest.mark.slow
def test_loss_aggregation_reaches_the_summed_loss(kitchen: Kitchen, home: Path) -> None:
    """One step with the same seed samples the same rollouts whatever the aggregation, so the
    step's summed loss under ``dapo`` is the ``sum`` run's over the step's completion tokens
    (up to float32 rounding of a sum whose terms nearly cancel); the config records the key,
    and a mode that does not exist is one line."""
    small = [*SMALL_RL_CONFIG[1:], "max_steps=1", "save_every=0", "eval_examples=1"]
    metrics = {}
    for mode in ("sum", "dapo"):
        r = kitchen("run", "rl_basic", *small, f"loss_aggregation={mode}", "--run-id", mode)
        assert r.code == 0, r.stderr
        state = replay_json(kitchen, mode)["state"]
        assert state["config"]["loss_aggregation"] == mode
        metrics[mode] = state["step_metrics"]["0"]
    tokens = metrics["sum"]["env/all/total_ac_tokens"]
    assert tokens > 0 and metrics["dapo"]["env/all/total_ac_tokens"] == tokens
    assert metrics["dapo"]["optim/loss"] == pytest.approx(
        metrics["sum"]["optim/loss"] / tokens, rel=1e-4, abs=1e-5 / tokens
    )
    bad = kitchen("run", "rl_basic", "loss_aggregation=mean", "--run-id", "bad")
    assert bad.code == 2 and "loss_aggregation" in bad.stderr
    assert not (home / "bad").exists()
