"""forward_backward: submit the policy-gradient pass (``importance_sampling`` or ``ppo``,
summed over tokens as tinker defines them); the result is awaited later."""

from __future__ import annotations

import time

from kitchen.stage_api import StageResult
from kitchen.workflows.common.loop import InFlight
from kitchen.workflows.rl.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    r, b = ctx.resources, ctx.resources.batch
    fb = r.training.forward_backward(b.data, ctx.config.loss_fn)
    r.pipeline.inflight[b.step] = InFlight(
        step=b.step,
        epoch=r.cursor.epoch,
        fb=fb,
        optim=None,
        learning_rate=0.0,
        num_sequences=len(b.data),
        num_tokens=sum(d.model_input.length for d in b.data),
        num_loss_tokens=sum(sum(m) for m in b.masks),
        submitted_at=time.perf_counter(),
    )
    return StageResult({"loss_fn": ctx.config.loss_fn}, step=b.step)
