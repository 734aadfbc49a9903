"""Helpers for tests that run dpo_basic through the CLI: a small pairs file and a reduced
config that takes seconds, and what the event log says about the reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STEPS = 6
SAVE_EVERY = 2
KIND = "reference_logprobs"


def write_pairs(path: Path, rows: int = 44) -> Path:
    """The first ``rows`` embedded preference pairs as a local JSONL file (no test split: the
    last ``test_size`` rows are held out)."""
    from kitchen.embedded.datasets import load_embedded

    pairs = load_embedded("kitchen/arith-prefs", "train")[:rows]
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    return path


def small_dpo_config(pairs: Path) -> list[str]:
    """A 6-step dpo_basic run on 40 training pairs and 4 held-out ones."""
    return [
        f"dataset={pairs}",
        "test_size=4",
        "eval_examples=4",
        "batch_size=4",
        f"max_steps={STEPS}",
        f"save_every={SAVE_EVERY}",
        "num_epochs=1",
        "max_length=64",
    ]


def effective_references(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Reference records of the effective history (not superseded, not deleted)."""
    state = doc["state"]
    ranges = state["superseded"]
    return [
        a
        for a in state["artifacts"]
        if a["kind"] == KIND
        and not a["deleted"]
        and not any(lo <= a["seq"] <= hi for lo, hi in ranges)
    ]


def reference_computations(doc: dict[str, Any]) -> list[tuple[int, bool]]:
    """(seq, computed) of every completed reference stage, in log order."""
    return [
        (e["seq"], bool(e["payload"]["outputs"]["computed"]))
        for e in doc["events"]
        if e["type"] == "StageCompleted" and e["payload"]["stage"] == "compute_reference_logprobs"
    ]
