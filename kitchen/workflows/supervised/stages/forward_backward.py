"""forward_backward: submit the batch's forward/backward pass; the result is awaited later.

Submitting without waiting is what lets step N+1's pass be queued while step N's results are
still being logged (submit-ahead); the backend runs operations in submission order.
"""

from __future__ import annotations

import time

from kitchen.stage_api import StageResult
from kitchen.workflows.common.inflight import submit
from kitchen.workflows.supervised.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    step, batch = r.batch
    fb = r.training.forward_backward(batch, "cross_entropy")
    submit(r, step, fb, r.batch_stats, time.perf_counter())
    return StageResult(step=step)
