"""Recipes through the Tinker adapter against ``kitchen serve``, beside the same recipe on the
local backend: the final adapters are the same bytes (sl_basic) or the same to float noise
(dpo_basic, rl_basic), and no API key is written anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.compare import (
    files,
    grep_key,
    largest_metric_difference,
    largest_weight_difference,
    step_metrics,
)
from kitchen.testing.dpo import small_dpo_config, write_pairs
from kitchen.testing.runs import SMALL_RL_CONFIG
from kitchen.workflows.rl import codec

TINKER = "adapters.training=tinker"
SL = [
    "max_steps=6",
    "save_every=3",
    "batch_size=8",
    "max_length=64",
    "eval_examples=4",
    "eval_max_tokens=4",
    "seed=0",
]


def both(
    kitchen_for: Any, served: Any, recipe: str, config: list[str], *tinker_only: str
) -> tuple[Any, ...]:
    """The recipe on the local backend and through Tinker; each must complete."""
    local, local_home = kitchen_for("local")
    remote, remote_home = kitchen_for("tinker", served)
    a = local("run", recipe, *config, "--run-id", "r")
    assert a.code == 0, a.stderr[-2000:]
    b = remote("run", recipe, *config, TINKER, *tinker_only, "--run-id", "r")
    assert b.code == 0, b.stderr[-2000:]
    return local, local_home, remote, remote_home, b.stdout + b.stderr


def test_sl_basic_through_tinker_is_byte_identical_and_keeps_no_key(
    kitchen_for: Any, served: Any
) -> None:
    local, local_home, remote, remote_home, output = both(
        kitchen_for, served, "sl_basic", SL, "--trace", "console"
    )
    assert files(remote_home / "r" / "final") == files(local_home / "r" / "final")
    assert "trace_id" in output  # the spans, printed to stderr, are part of what is grepped
    assert step_metrics(remote, "r") == step_metrics(local, "r")
    verify = remote("replay", "r", "--verify")
    assert verify.code == 0, verify.stderr
    exported = remote("export", "r", "--out", str(remote_home / "export.jsonl"))
    assert exported.code == 0, exported.stderr
    captured = output + verify.stdout + verify.stderr + exported.stdout + exported.stderr
    assert grep_key(served.key, remote_home, served.home, text=captured) == []


@pytest.mark.slow
def test_dpo_basic_through_tinker_matches_the_local_backend(
    kitchen_for: Any, served: Any, tmp_path: Path
) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    config = [*small_dpo_config(pairs), "max_steps=5"]
    local, local_home, remote, remote_home, _ = both(kitchen_for, served, "dpo_basic", config)
    assert largest_metric_difference(step_metrics(remote, "r"), step_metrics(local, "r")) <= 1e-6
    assert (
        largest_weight_difference(remote_home / "r" / "final", local_home / "r" / "final") <= 1e-5
    )


@pytest.mark.slow
def test_rl_basic_through_tinker_matches_the_local_backend(kitchen_for: Any, served: Any) -> None:
    config = [*SMALL_RL_CONFIG, "max_steps=5"]
    local, local_home, remote, remote_home, _ = both(kitchen_for, served, "rl_basic", config)
    assert largest_metric_difference(step_metrics(remote, "r"), step_metrics(local, "r")) <= 1e-6
    assert (
        largest_weight_difference(remote_home / "r" / "final", local_home / "r" / "final") <= 1e-5
    )
    rollouts = "r/artifacts/rollouts"
    assert files(remote_home / rollouts) == files(local_home / rollouts)


@pytest.mark.slow
def test_rl_multiturn_through_tinker_takes_several_turns(kitchen_for: Any, served: Any) -> None:
    """Multi-turn rollouts through the Tinker adapter: turn 0 is the group's one seeded
    ``sample`` call, the same tokens as on the local backend; later turns are one request per
    observation there (``sample_batch``), where the local backend decodes them in one batch
    whose shared random draws may give other tokens, so the runs are compared on turn 0."""
    config = [
        "max_steps=2",
        "save_every=1",
        "group_size=2",
        "groups_per_batch=4",
        "max_tokens=4",
        "max_turns=3",
        "eval_examples=2",
        "eval_max_tokens=4",
    ]
    *_, local_home, _, remote_home, _ = both(kitchen_for, served, "rl_multiturn", config)
    blob = "r/artifacts/rollouts/step-000001.json"
    _, remote = codec.decode((remote_home / blob).read_bytes())
    _, local = codec.decode((local_home / blob).read_bytes())
    turns = [len(tr.transitions) for g in remote for tr in g.trajectories]
    assert max(turns) > 1, turns
    first = [[tr.transitions[0].tokens for tr in g.trajectories] for g in remote]
    assert first == [[tr.transitions[0].tokens for tr in g.trajectories] for g in local]
