"""Lineage: a run started from another run's weights, on record and checked on every resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import Kitchen, one_line_error
from kitchen.testing.runs import SMALL_SL_CONFIG

pytestmark = pytest.mark.slow
SMALL = [*SMALL_SL_CONFIG, "max_steps=6", "save_every=2"]


def _state(kitchen: Kitchen, run_id: str) -> dict[str, Any]:
    r = kitchen("show", run_id, "--json")
    assert r.code == 0, r.stderr
    return dict(json.loads(r.stdout)["state"])


def _evals(state: dict[str, Any]) -> dict[int, dict[str, float]]:
    return {int(k): v for k, v in state["eval_metrics"].items()}


@pytest.fixture
def parent(kitchen: Kitchen) -> str:
    r = kitchen("run", "sl_basic", *SMALL, "--run-id", "parent")
    assert r.code == 0, r.stderr
    return "parent"


def test_a_child_starts_from_the_parents_final_adapter(
    kitchen: Kitchen, home: Path, parent: str
) -> None:
    r = kitchen("run", "sl_basic", *SMALL, "load_checkpoint_path=run:parent", "--run-id", "child")
    assert r.code == 0, r.stderr
    child, mother = _state(kitchen, "child"), _state(kitchen, parent)
    [ref] = child["lineage"]
    assert (ref["role"], ref["kind"], ref["run_id"], ref["what"]) == (
        "parent",
        "run",
        "parent",
        "final",
    )
    assert ref["uri"] == "parent/final"
    assert ref["sha256"] == mother["artifacts"][-1]["sha256"]
    # The child's first evaluation sees exactly the weights the parent ended with.
    assert _evals(child)[0]["test/nll"] == pytest.approx(_evals(mother)[6]["test/nll"], abs=1e-6)
    assert _evals(child)[0]["test/nll"] < _evals(mother)[0]["test/nll"]
    shown = kitchen("show", "child").stdout
    assert "lineage:" in shown
    assert f"parent   run parent (final)  sha256 {ref['sha256'][:16]}" in shown


def test_a_child_can_start_from_a_named_checkpoint(kitchen: Kitchen, parent: str) -> None:
    r = kitchen("run", "sl_basic", *SMALL, "load_checkpoint_path=run:parent@4", "--run-id", "c4")
    assert r.code == 0, r.stderr
    [ref] = _state(kitchen, "c4")["lineage"]
    assert (ref["what"], ref["step"], ref["uri"]) == (
        "step-000004",
        4,
        "parent/checkpoints/step-000004",
    )


def test_a_changed_parent_adapter_is_refused_on_resume(
    kitchen: Kitchen, home: Path, parent: str
) -> None:
    killed = kitchen(
        "run",
        "sl_basic",
        *SMALL,
        "load_checkpoint_path=run:parent",
        "--run-id",
        "orphan",
        extra_env={"KITCHEN_FAULT": "checkpoint:after_blob@2"},
    )
    assert killed.code == -9
    weights = home / "parent" / "final" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    line = one_line_error(kitchen("resume", "orphan"))
    assert "parent weights 'run:parent' changed since the run was created" in line
    assert "--force" in line
    assert _state(kitchen, "orphan")["attempts"][-1]["number"] == 1  # nothing was started


def test_a_parent_that_is_not_completed_needs_a_named_checkpoint(kitchen: Kitchen) -> None:
    killed = kitchen(
        "run",
        "sl_basic",
        *SMALL,
        "--run-id",
        "halfway",
        extra_env={"KITCHEN_FAULT": "checkpoint:after_blob@2"},
    )
    assert killed.code == -9
    line = one_line_error(
        kitchen("run", "sl_basic", *SMALL, "load_checkpoint_path=run:halfway", "--run-id", "x")
    )
    assert "run 'halfway' is running, with no final adapter" in line
    assert kitchen("show", "x").code == 2  # the refused run was never created
