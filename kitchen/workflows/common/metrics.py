"""metrics.jsonl in the run folder: one line per logged step and attempt, for plain tools."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def append_jsonl(run_dir: Path, attempt: int, steps: Mapping[int, Mapping[str, Any]]) -> None:
    if not steps:
        return
    with (run_dir / "metrics.jsonl").open("a", encoding="utf-8") as fh:
        for step, metrics in sorted(steps.items()):
            fh.write(json.dumps({"step": step, "attempt": attempt, **metrics}) + "\n")
