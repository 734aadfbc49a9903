"""log_step_metrics: publish the finished steps' metrics (events, metrics.jsonl, OTel).

The runner records ``metrics`` in StageCompleted and sends them to OpenTelemetry; this stage
appends them to ``metrics.jsonl`` in the run folder, one line per step and attempt.
"""

from __future__ import annotations

from kitchen.stage_api import StageResult
from kitchen.workflows.common.metrics import append_jsonl
from kitchen.workflows.supervised.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    ready, r.pipeline.ready = r.pipeline.ready, {}
    append_jsonl(ctx.run_dir, ctx.attempt, ready)
    step, _ = r.batch
    return StageResult(step=step, metrics=dict(sorted(ready.items())))
