"""log_step_metrics: publish the step's metrics (events, metrics.jsonl, OpenTelemetry)."""

from __future__ import annotations

from kitchen.stage_api import StageResult
from kitchen.workflows.common.metrics import append_jsonl
from kitchen.workflows.rl.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    b = ctx.resources.batch
    metrics = {b.step: dict(sorted(b.metrics.items()))}
    append_jsonl(ctx.run_dir, ctx.attempt, metrics)
    return StageResult(step=b.step, metrics=metrics)
