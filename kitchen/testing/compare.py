"""Comparing two runs of one recipe (e.g. through the Tinker adapter and on the local backend)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kitchen.testing.cli import Kitchen

TIMING = ("time", "per_s", "eta")


def step_metrics(kitchen: Kitchen, run_id: str) -> dict[str, dict[str, float]]:
    """Per step, the metrics that do not depend on the clock (losses, rewards, counts)."""
    r = kitchen("replay", run_id, "--json")
    assert r.code == 0, r.stderr
    state = json.loads(r.stdout)["state"]
    return {
        step: {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not any(t in k for t in TIMING)
        }
        for step, metrics in state["step_metrics"].items()
    }


def largest_metric_difference(
    a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]
) -> float:
    assert a.keys() == b.keys()
    worst = 0.0
    for step in a:
        assert a[step].keys() == b[step].keys(), step
        for k in a[step]:
            worst = max(worst, abs(a[step][k] - b[step][k]))
    return worst


def largest_weight_difference(a: Path, b: Path) -> float:
    from safetensors.numpy import load_file

    ta, tb = (
        load_file(str(a / "adapter_model.safetensors")),
        load_file(str(b / "adapter_model.safetensors")),
    )
    assert ta.keys() == tb.keys()
    return max(float(abs(ta[k].astype("float64") - tb[k].astype("float64")).max()) for k in ta)


def files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def grep_key(key: str, *roots: Path, text: str = "") -> list[str]:
    """Every file under ``roots`` (and the captured text) that holds the key."""
    found = [
        str(p)
        for root in roots
        for p in root.rglob("*")
        if p.is_file() and key.encode() in p.read_bytes()
    ]
    if key in text:
        found.append("<captured output>")
    return found


def dump(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True)
