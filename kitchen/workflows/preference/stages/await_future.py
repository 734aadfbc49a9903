"""await_future: take the results of submitted steps and turn them into step metrics.

Pipelined: normally it awaits the *previous* step, so the current step's backward keeps the
backend busy while the runner logs and commits. Before a checkpoint, an evaluation, the last
step or a stop it drains everything, so a checkpoint never holds a later batch than its cursor.
"""

from __future__ import annotations

import time
from typing import Any

from kitchen.stage_api import StageResult, View
from kitchen.workflows.common.conditions import drain_due
from kitchen.workflows.common.loop import InFlight
from kitchen.workflows.preference.resources import Ctx

DPO_METRICS = ("dpo_loss", "accuracy", "margin", "chosen_reward", "rejected_reward")


def _metrics(ctx: Ctx, flight: InFlight, elapsed: float) -> dict[str, Any]:
    fb = flight.fb.result()
    flight.optim.result()
    return {
        "epoch": flight.epoch,
        "progress": (flight.step + 1) / ctx.resources.plan.total_steps,
        "learning_rate": flight.learning_rate,
        **{k: float(fb.metrics[k]) for k in DPO_METRICS},
        "num_pairs": flight.num_sequences,
        "num_tokens": flight.num_tokens,
        "step_time_s": elapsed,
        "tokens_per_s": flight.num_tokens / elapsed,
    }


def run(ctx: Ctx) -> StageResult:
    p = ctx.resources.pipeline
    current, _ = ctx.resources.batch
    drain = drain_due(View(ctx.state, ctx.config, ctx.resources), ctx.interrupted())
    awaited = []
    for step in sorted(p.inflight):
        if step == current and not drain:
            continue
        flight = p.inflight.pop(step)
        flight.optim.result()
        now = time.perf_counter()
        started = max(flight.submitted_at, p.last_done_at or flight.submitted_at)
        p.last_done_at = now
        p.ready[step] = _metrics(ctx, flight, max(now - started, 1e-9))
        awaited.append(step)
    return StageResult({"awaited": awaited, "drained": drain}, step=current)
