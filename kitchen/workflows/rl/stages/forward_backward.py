"""forward_backward: submit the policy-gradient pass (``importance_sampling`` or ``ppo``,
summed over tokens as tinker defines them); the result is awaited later."""

from __future__ import annotations

import time

from kitchen.stage_api import StageResult
from kitchen.workflows.common.inflight import submit
from kitchen.workflows.rl.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    r, b = ctx.resources, ctx.resources.batch
    fb = r.training.forward_backward(b.data, ctx.config.loss_fn)
    sizes = (
        len(b.data),
        sum(d.model_input.length for d in b.data),
        sum(sum(m) for m in b.masks),
    )
    submit(r, b.step, fb, sizes, time.perf_counter())
    return StageResult({"loss_fn": ctx.config.loss_fn}, step=b.step)
