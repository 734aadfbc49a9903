"""await_future: take the results of submitted steps.

Pipelined: normally it awaits the *previous* step, so the current step keeps the backend busy
while the runner logs and commits. Before a checkpoint, an evaluation, the last step, or an
interruption it drains everything, so a checkpoint never contains a later batch than its cursor
says (and never misses an earlier one).
"""

from __future__ import annotations

import time

from kitchen.stage_api import StageResult, View
from kitchen.workflows.supervised import conditions as wf
from kitchen.workflows.supervised.resources import Ctx


def _must_drain(ctx: Ctx) -> bool:
    view = View(ctx.state, ctx.config, ctx.resources)
    last = wf.steps_done(view) >= wf.total_steps(view) or not wf.more_batches(view)
    return (
        last
        or wf.save_due(view)
        or wf.eval_due(view)
        or ctx.interrupted()
        or not ctx.config.pipeline
    )


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    p = r.pipeline
    current, _ = r.batch
    drain = _must_drain(ctx)
    awaited = []
    for step in sorted(p.inflight):
        if step == current and not drain:
            continue
        flight = p.inflight.pop(step)
        fb = flight.fb.result()
        flight.optim.result()
        now = time.perf_counter()
        started = max(flight.submitted_at, p.last_done_at or flight.submitted_at)
        p.last_done_at = now
        elapsed = max(now - started, 1e-9)
        loss_sum = float(fb.metrics["loss:sum"])
        p.ready[step] = {
            "epoch": flight.epoch,
            "progress": (step + 1) / r.plan.total_steps,
            "learning_rate": flight.learning_rate,
            "num_sequences": flight.num_sequences,
            "num_tokens": flight.num_tokens,
            "num_loss_tokens": flight.num_loss_tokens,
            "train_mean_nll": loss_sum / max(flight.num_loss_tokens, 1.0),
            "step_time_s": elapsed,
            "tokens_per_s": flight.num_tokens / elapsed,
        }
        awaited.append(step)
    return StageResult({"awaited": awaited, "drained": drain}, step=current)
