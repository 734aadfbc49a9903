"""forward_backward: submit the batch's forward/backward pass; the result is awaited later.

Submitting without waiting is what lets step N+1's pass be queued while step N's results are
still being logged (submit-ahead); the backend runs operations in submission order.
"""

from __future__ import annotations

import time

from kitchen.stage_api import StageResult
from kitchen.workflows.common.loop import InFlight
from kitchen.workflows.supervised.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    step, batch = r.batch
    n_seq, n_tok, n_loss = r.batch_stats
    fb = r.training.forward_backward(batch, "cross_entropy")
    r.pipeline.inflight[step] = InFlight(
        step=step,
        epoch=r.cursor.epoch,
        fb=fb,
        optim=None,
        learning_rate=0.0,
        num_sequences=n_seq,
        num_tokens=n_tok,
        num_loss_tokens=n_loss,
        submitted_at=time.perf_counter(),
    )
    return StageResult(step=step)
