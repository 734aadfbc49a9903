"""optim_step: submit the optimizer step with this step's scheduled learning rate."""

from __future__ import annotations

from kitchen.stage_api import StageContext, StageResult
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.loop import adam_params
from kitchen.workflows.common.resources import TrainingResources

Ctx = StageContext[TrainingConfig, TrainingResources]


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    step = r.step_in_hand
    params = adam_params(ctx.config, step, r.plan.total_steps)
    flight = r.pipeline.inflight[step]
    flight.optim = r.training.optim_step(params)
    flight.learning_rate = params.learning_rate
    return StageResult({"learning_rate": params.learning_rate}, step=step, optim_step=step)
