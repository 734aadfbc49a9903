"""kitchen fork on distill_on_policy: the teacher is the parent's, checked, never changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen, one_line_error
from kitchen.testing.runs import (
    SMALL_SL_CONFIG,
    adapter_sha,
    created_payload,
)

pytestmark = pytest.mark.slow

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
    lineage = created_payload(home, "s3")["payload"]["lineage"]
    assert [(x["role"], x["run_id"]) for x in lineage] == [("teacher", "teacher")]

    line = one_line_error(kitchen("fork", "s@3", "teacher_checkpoint=run:s2"))
    assert "'teacher_checkpoint' cannot change at a fork" in line
    before = sorted(p.name for p in home.iterdir())
    weights = home / "teacher" / "final" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes() + b"\0")
    line = one_line_error(kitchen("fork", "s@3", "--run-id", "s3x"))
    assert "teacher weights 'run:teacher' changed since the run was created" in line
    assert sorted(p.name for p in home.iterdir()) == before
