"""Distillation through the real CLI: the teacher on record (with its sha256, in ``kitchen
show``), checked on every resume, its accuracy measured at the start; the teacher's
completions recorded before off-policy training and never generated again on a resume."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import Kitchen, one_line_error
from kitchen.testing.runs import (
    SMALL_OFF_POLICY_CONFIG,
    SMALL_ON_POLICY_CONFIG,
    SMALL_SL_CONFIG,
    adapter_sha,
    replay_json,
)

pytestmark = pytest.mark.slow
TEACHER = [*SMALL_SL_CONFIG, "max_steps=6", "save_every=3"]


def _state(kitchen: Kitchen, run_id: str) -> dict[str, Any]:
    r = kitchen("show", run_id, "--json")
    assert r.code == 0, r.stderr
    return dict(json.loads(r.stdout)["state"])


@pytest.fixture
def teacher(kitchen: Kitchen) -> str:
    r = kitchen("run", "sl_basic", *TEACHER, "--run-id", "teacher")
    assert r.code == 0, r.stderr
    return "teacher"


def test_on_policy_records_the_teacher_and_measures_it_first(
    kitchen: Kitchen, teacher: str
) -> None:
    r = kitchen(
        "run", "distill_on_policy", *SMALL_ON_POLICY_CONFIG, "teacher_checkpoint=run:teacher",
        "--run-id", "student",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    state, mother = _state(kitchen, "student"), _state(kitchen, teacher)
    [ref] = state["lineage"]
    assert (ref["role"], ref["kind"], ref["run_id"], ref["what"], ref["uri"]) == (
        "teacher", "run", "teacher", "final", "teacher/final",
    )  # fmt: skip
    final = [a for a in mother["artifacts"] if a["kind"] == "final_weights"][-1]
    assert ref["sha256"] == final["sha256"]
    shown = kitchen("show", "student").stdout
    assert f"teacher  run teacher (final)  sha256 {ref['sha256'][:16]}" in shown
    first = state["eval_metrics"]["0"]
    assert {"test/accuracy", "teacher/accuracy", "teacher/examples"} <= set(first)
    assert first["teacher/examples"] == 4
    steps = state["step_metrics"]
    assert sorted(int(s) for s in steps) == [0, 1, 2, 3]
    assert all(math.isfinite(m["teacher_kl"]) for m in steps.values())
    assert state["status"] == "completed" and not state["mismatches"]
    verify = kitchen("replay", "student", "--verify")
    assert verify.code == 0, verify.stderr


def test_a_changed_teacher_is_refused_on_resume_and_force_is_on_record(
    kitchen: Kitchen, home: Path, teacher: str
) -> None:
    killed = kitchen(
        "run", "distill_on_policy", *SMALL_ON_POLICY_CONFIG, "teacher_checkpoint=run:teacher",
        "--run-id", "taught", extra_env={"KITCHEN_FAULT": "checkpoint:after_blob@2"},
    )  # fmt: skip
    assert killed.code == -9
    weights = home / "teacher" / "final" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    line = one_line_error(kitchen("resume", "taught"))
    assert "teacher weights 'run:teacher' changed since the run was created" in line
    assert "--force" in line
    assert _state(kitchen, "taught")["attempts"][-1]["number"] == 1  # nothing was started
    forced = kitchen("resume", "taught", "--force")
    assert forced.code == 0, forced.stderr
    resumed = [e["payload"] for e in replay_json(kitchen, "taught")["events"]]
    [record] = [p for p in resumed if "forced" in p and "differences" in p]
    assert record["forced"] is True
    assert any("teacher weights 'run:teacher' changed" in d for d in record["differences"])


def test_a_base_model_teacher_is_hashed_and_recorded(kitchen: Kitchen) -> None:
    r = kitchen(
        "run", "distill_on_policy", *SMALL_ON_POLICY_CONFIG, "max_steps=1",
        "teacher_model=kitchen/tiny", "--run-id", "self-taught",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    [ref] = _state(kitchen, "self-taught")["lineage"]
    assert (ref["role"], ref["kind"], ref["source"]) == ("teacher", "base_model", "kitchen/tiny")
    assert ref["sha256"] and len(ref["sha256"]) == 64


def test_off_policy_records_the_teachers_completions_before_training_and_reuses_them(
    kitchen: Kitchen, home: Path, teacher: str
) -> None:
    args = [*SMALL_OFF_POLICY_CONFIG, "teacher_checkpoint=run:teacher"]
    ok = kitchen("run", "distill_off_policy", *args, "--run-id", "whole")
    assert ok.code == 0, ok.stderr
    env = {"KITCHEN_FAULT": "stage:forward_backward:before@4"}
    killed = kitchen("run", "distill_off_policy", *args, "--run-id", "cut", extra_env=env)
    assert killed.code == -9
    resumed = kitchen("resume", "cut")
    assert resumed.code == 0, resumed.stderr
    doc = replay_json(kitchen, "cut")
    events = doc["events"]
    runs = [
        e for e in events
        if e["type"] == "StageCompleted" and e["payload"]["stage"] == "generate_teacher_outputs"
    ]  # fmt: skip
    assert [e["payload"]["outputs"]["generated"] for e in runs] == [True, False]
    recorded = runs[0]["seq"]
    first_optim = min(
        e["seq"] for e in events
        if e["type"] == "StageCompleted" and e["payload"].get("optim_step") is not None
    )  # fmt: skip
    assert recorded < first_optim
    [art] = [a for a in doc["state"]["artifacts"] if a["kind"] == "teacher_outputs"]
    assert len(art["sha256"]) == 64
    assert _state(kitchen, "cut")["eval_metrics"]["0"]["teacher/examples"] == 4
    # Same completions, same data order: the resumed run ends with the same adapter.
    assert adapter_sha(home, "cut") == adapter_sha(home, "whole")
