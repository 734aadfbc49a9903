"""A workflow that exists only in the tests gets through the unchanged engine.

The bakery (``plugin/bakery``) names its stages knead/proof/bake/taste/shelve/box/sweep, takes
its step fact from ``bake`` and compares re-executed steps on ``crumb_loss``, on a fake oven
backend. It is installed the way a third party's plugin is (entry-point metadata on the
path), and driven through the real ``kitchen`` CLI and a real SQLite file: group commit,
exactly-once optimizer steps across a SIGKILL and a resume, the determinism check, spans and
``kitchen replay --verify`` all work without a line of the engine knowing it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import Kitchen, make_kitchen

PLUGIN = Path(__file__).parent / "plugin"
ROOT = Path(__file__).parents[2]
STEP0_LOSS = 0.415  # weights [0.25, 0.5, 0.75, 1.0], dough [0, 0.6, 0.2, 0.8]: by hand


@pytest.fixture
def kitchen(tmp_path: Path) -> Kitchen:
    run = make_kitchen(tmp_path / "home")

    def with_plugin(*args: str, extra_env: dict[str, str] | None = None) -> Any:
        return run(*args, extra_env={"PYTHONPATH": f"{PLUGIN}:{ROOT}", **(extra_env or {})})

    return with_plugin


def _state(kitchen: Kitchen, run_id: str) -> dict[str, Any]:
    r = kitchen("replay", run_id, "--json")
    assert r.code == 0, r.stderr
    return dict(json.loads(r.stdout))


def _loaf(kitchen: Kitchen, run_id: str) -> list[float]:
    events = _state(kitchen, run_id)["events"]
    boxed = [e for e in events if e["stage"] == "box" and e["type"] == "StageCompleted"]
    return list(boxed[-1]["payload"]["outputs"]["weights"])


def test_the_engine_names_no_part_of_the_bakery() -> None:
    words = ("bakery", "bake_basic", "crumb_loss")
    found = subprocess.run(
        ["grep", "-rIl", *(f"-e{w}" for w in words), "kitchen", "store"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.stdout == ""


def test_the_plugin_recipe_is_listed_with_its_graph(kitchen: Kitchen) -> None:
    listed = kitchen("recipes")
    assert "bake_basic" in listed.stdout and "[workflow: bakery]" in listed.stdout
    graph = kitchen("recipes", "--graph", "bake_basic").stdout
    assert "proof --bake--> bake" in graph
    assert "taste --shelve--> shelve  [shelve_due]" in graph


def test_an_uninterrupted_bake_records_every_fact_and_verifies(kitchen: Kitchen) -> None:
    r = kitchen("run", "bake_basic", "--run-id", "plain")
    assert r.code == 0, r.stderr
    state = _state(kitchen, "plain")["state"]
    assert state["status"] == "completed"
    assert state["optim_steps"] == [0, 1, 2, 3, 4, 5]
    assert state["total_steps"] == 6
    assert sorted(int(k) for k in state["step_metrics"]) == [0, 1, 2, 3, 4, 5]
    assert state["step_metrics"]["0"]["crumb_loss"] == pytest.approx(STEP0_LOSS, abs=1e-12)
    assert [c["name"] for c in state["checkpoints"]] == ["loaf-0002", "loaf-0004"]
    assert state["adapter_uri"] == "plain/boxed"
    # Created + attempt 2, knead 2, 6 loaves x 3 hot stages x 2, 2 shelves x 3 (with their
    # CheckpointSaved), box 2, sweep 2, RunCompleted 1: 51.
    verified = kitchen("replay", "plain", "--verify")
    assert verified.code == 0, verified.stderr
    assert verified.stdout.splitlines()[-1] == ("verified: 51 events, 2 checkpoints, final adapter")


@pytest.mark.parametrize("window_ms", ["0", None], ids=["commit-every-step", "default-window"])
def test_a_sigkill_mid_step_loses_only_uncommitted_steps_and_resume_bakes_each_step_once(
    kitchen: Kitchen, window_ms: str | None
) -> None:
    assert kitchen("run", "bake_basic", "--run-id", "plain").code == 0
    env = {"KITCHEN_FAULT": "stage:taste:after@4"}
    if window_ms is not None:
        env["KITCHEN_COMMIT_WINDOW_MS"] = window_ms
    killed = kitchen("run", "bake_basic", "--run-id", "burnt", extra_env=env)
    assert killed.code == -9
    events = _state(kitchen, "burnt")["events"]
    committed = [(e["type"], e["stage"], e["step"]) for e in events if e["stage"]]
    if window_ms == "0":
        # The hot stages of step 3 share one commit, made at step 4's boundary: none of it
        # landed, and everything before it did.
        assert committed[-1] == ("StageCompleted", "taste", 2)
    else:
        # The bakery's steps are far faster than the 50 ms commit window, so steps share
        # commits: what a kill loses is the steps since the last commit, all of them after the
        # newest checkpoint (shelving commits everything before it).
        assert ("StageCompleted", "shelve", 1) in committed
    assert ("StageStarted", "bake", 3) not in committed
    resumed = kitchen("resume", "burnt")
    assert resumed.code == 0, resumed.stderr
    state = _state(kitchen, "burnt")["state"]
    assert state["optim_steps"] == [0, 1, 2, 3, 4, 5]
    assert state["mismatches"] == []
    assert _loaf(kitchen, "burnt") == _loaf(kitchen, "plain")
    assert kitchen("replay", "burnt", "--verify").code == 0


def test_a_reexecuted_step_with_another_loss_is_a_determinism_mismatch(kitchen: Kitchen) -> None:
    killed = kitchen(
        "run",
        "bake_basic",
        "--run-id",
        "uneven",
        extra_env={"KITCHEN_FAULT": "stage:shelve:before@2"},
    )
    assert killed.code == -9
    resumed = kitchen("resume", "uneven", extra_env={"BAKERY_BURN_STEP": "3"})
    assert resumed.code == 0, resumed.stderr
    mismatches = _state(kitchen, "uneven")["state"]["mismatches"]
    assert [(m["step"], m["metric"]) for m in mismatches] == [(3, "crumb_loss")]
    assert mismatches[0]["replayed"] - mismatches[0]["logged"] == pytest.approx(1.0)


def test_every_bakery_stage_is_a_span(kitchen: Kitchen) -> None:
    r = kitchen("run", "bake_basic", "steps=2", "save_every=0", "--trace", "console")
    assert r.code == 0, r.stderr
    names = [
        line.split('"')[3] for line in r.stderr.splitlines() if line.strip().startswith('"name"')
    ]
    assert [n for n in names if n != "attempt"][:4] == ["knead", "proof", "bake", "taste"]
