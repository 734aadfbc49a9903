"""kitchen fork on dpo_basic: the parent's reference is carried, never recomputed; no
override ends with the parent's adapter, a new learning rate changes the steps after the fork."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.dpo import small_dpo_config, write_pairs
from kitchen.testing.runs import (
    adapter_sha,
    created_payload,
    events_of,
    step_metrics,
)

pytestmark = pytest.mark.slow


def _stages(home: Path, run_id: str, stage: str) -> list[dict[str, object]]:
    return [
        e["payload"]["outputs"]
        for e in events_of(home, run_id)
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
        for e in events_of(home, "d")
        if e["type"] == "StageCompleted"
        for a in e["payload"].get("artifacts", [])
        if a["kind"] == "reference_logprobs"
    ]
    for fork_id in ("d4", "d3lr"):
        carried = created_payload(home, fork_id)["payload"]["fork"]["artifacts"]
        assert [(a["kind"], a["sha256"]) for a in carried] == [
            ("reference_logprobs", parent_ref[0]["sha256"])
        ]
        assert carried[0]["uri"] == f"{fork_id}/artifacts/reference_logprobs/logprobs.safetensors"
        assert [o["computed"] for o in _stages(home, fork_id, "compute_reference_logprobs")] == [
            False
        ]
    parent, child = step_metrics(home, "d"), step_metrics(home, "d3lr")
    assert child[3]["dpo_loss"] == parent[3]["dpo_loss"]  # the parent's state at step 3
    assert child[4]["dpo_loss"] != parent[4]["dpo_loss"]
