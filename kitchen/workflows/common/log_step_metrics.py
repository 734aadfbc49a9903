"""log_step_metrics: publish the finished steps' metrics (events, metrics.jsonl, OTel).

``await_future`` leaves each finished step's metrics in ``pipeline.ready``; this stage takes
them all. The runner records ``metrics`` in StageCompleted and sends them to OpenTelemetry;
this stage appends them to ``metrics.jsonl`` in the run folder, one line per step and attempt.
"""

from __future__ import annotations

from kitchen.stage_api import StageContext, StageResult
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.metrics import append_jsonl
from kitchen.workflows.common.resources import TrainingResources

Ctx = StageContext[TrainingConfig, TrainingResources]


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    ready, r.pipeline.ready = r.pipeline.ready, {}
    append_jsonl(ctx.run_dir, ctx.attempt, ready)
    return StageResult(step=r.step_in_hand, metrics=dict(sorted(ready.items())))
