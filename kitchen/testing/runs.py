"""Helpers for tests that run sl_basic through the CLI and inspect the result."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from kitchen.testing.cli import Kitchen

STEPS = 20
SAVE_EVERY = 5
SMALL_SL_CONFIG = [
    f"max_steps={STEPS}",
    f"save_every={SAVE_EVERY}",
    "batch_size=8",
    "max_length=64",
    "eval_examples=4",
    "eval_max_tokens=4",
]
"""A 20-step sl_basic run that takes seconds: the shape the crash tests use."""


def adapter_sha(home: Path, run_id: str) -> str:
    data = (home / run_id / "final" / "adapter_model.safetensors").read_bytes()
    return hashlib.sha256(data).hexdigest()


def replay_json(kitchen: Kitchen, run_id: str) -> dict[str, Any]:
    r = kitchen("replay", run_id, "--json")
    assert r.code == 0, r.stderr
    return dict(json.loads(r.stdout))
