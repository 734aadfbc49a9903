"""log_step_metrics: publish the finished steps' metrics (events, metrics.jsonl, OTel)."""

from __future__ import annotations

from kitchen.stage_api import StageResult
from kitchen.workflows.common.metrics import append_jsonl
from kitchen.workflows.preference.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    ready, r.pipeline.ready = r.pipeline.ready, {}
    append_jsonl(ctx.run_dir, ctx.attempt, ready)
    step, _ = r.batch
    return StageResult(step=step, metrics=dict(sorted(ready.items())))
