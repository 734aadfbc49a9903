"""The two ends of a step in flight: ``forward_backward`` submits it, ``await_future`` takes
its results.

Pipelined (submit-ahead): ``await_future`` normally awaits the *previous* step, so the current
one keeps the backend busy while the runner logs and commits. Before a checkpoint, an
evaluation, the last step or a stop it drains everything (``drain_due``), so a checkpoint never
holds a later batch than its cursor says, and never misses an earlier one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kitchen.stage_api import StageContext, StageResult, View
from kitchen.workflows.common.conditions import drain_due
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.loop import InFlight
from kitchen.workflows.common.resources import TrainingResources

Ctx = StageContext[TrainingConfig, TrainingResources]
OwnMetrics = Callable[[InFlight, Any], dict[str, Any]]


def submit(
    r: TrainingResources, step: int, fb: Any, sizes: tuple[int, int, float], at: float
) -> None:
    """Put ``step`` in flight: its forward/backward future ``fb``, submitted at ``at``, and
    its (sequences, tokens, loss tokens); ``optim_step`` adds the optimizer's future."""
    n_seq, n_tok, n_loss = sizes
    r.pipeline.inflight[step] = InFlight(
        step=step,
        epoch=r.cursor.epoch,
        fb=fb,
        optim=None,
        learning_rate=0.0,
        num_sequences=n_seq,
        num_tokens=n_tok,
        num_loss_tokens=n_loss,
        submitted_at=at,
    )


def await_steps(ctx: Ctx, own: OwnMetrics) -> StageResult:
    """Take every finished step in flight (all of them when a drain is due) and leave the
    metrics of each in ``pipeline.ready`` for ``log_step_metrics``: its epoch, progress and
    learning rate, then the workflow's ``own(flight, forward_backward_output)``, then its
    time and tokens per second."""
    r = ctx.resources
    p = r.pipeline
    current = r.step_in_hand
    drain = drain_due(View(ctx.state, ctx.config, r), ctx.interrupted())
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
        p.ready[step] = {
            "epoch": flight.epoch,
            "progress": (step + 1) / r.plan.total_steps,
            "learning_rate": flight.learning_rate,
            **own(flight, fb),
            "step_time_s": elapsed,
            "tokens_per_s": flight.num_tokens / elapsed,
        }
        awaited.append(step)
    return StageResult({"awaited": awaited, "drained": drain}, step=current)
