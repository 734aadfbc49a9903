"""log_step_metrics: publish the finished steps' metrics (events, metrics.jsonl, OTel).

The runner records ``outputs["steps"]`` in StageCompleted and sends them to OpenTelemetry; this
stage appends them to ``metrics.jsonl`` in the run folder, one line per step and attempt.
"""

from __future__ import annotations

import json
from typing import Any


def run(ctx: Any) -> dict[str, Any]:
    r = ctx.resources
    ready, r.pipeline.ready = r.pipeline.ready, {}
    if ready:
        path = ctx.run_dir / "metrics.jsonl"
        with path.open("a", encoding="utf-8") as fh:
            for step, metrics in sorted(ready.items()):
                fh.write(json.dumps({"step": step, "attempt": ctx.attempt, **metrics}) + "\n")
    step, _ = r.batch
    return {"step": step, "steps": {str(k): v for k, v in sorted(ready.items())}}
