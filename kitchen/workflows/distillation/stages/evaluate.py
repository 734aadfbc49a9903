"""evaluate: RL's held-out greedy exact match (``test/…``) of the student; at the run's start,
the teacher too, by the same evaluator on the same problems (``teacher/…``), so the record
holds the gap distillation is meant to close.

Both go into the evaluation at step 0 as one set of metrics (``test/accuracy`` and
``teacher/accuracy`` side by side).
"""

from __future__ import annotations

from typing import Any

from kitchen.stage_api import StageContext, StageResult
from kitchen.workflows.rl.stages import evaluate as rl_evaluate


def run(ctx: StageContext[Any, Any]) -> StageResult:
    result = rl_evaluate.run(ctx)
    if ctx.stage.qualifier != "start" or not result.eval_metrics:
        return result
    teacher = rl_evaluate.measure(ctx, ctx.resources.teacher)
    metrics = dict(result.eval_metrics)
    metrics.update({"teacher/" + k.removeprefix("test/"): v for k, v in teacher.items()})
    return StageResult(result.outputs, step=result.step, eval_metrics=metrics)
