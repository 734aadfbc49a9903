"""A training loop's predicates, over the data cursor the stages keep in resources: those of a
loop in epochs (``CONDITIONS``: supervised, preference, off-policy distillation) and of a plain
step loop (``STEP_CONDITIONS``: RL, on-policy distillation).

The same functions tell ``await_future`` whether a checkpoint or evaluation follows the step
it is finishing, so it can drain the pipeline first (no later batch ever enters an earlier
checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kitchen.spec import PREEMPTION_PENDING
from kitchen.stage_api import View
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.resources import TrainingResources

V = View[TrainingConfig, TrainingResources]


def steps_done(v: V) -> int:
    return int(v.resources.cursor.step)


def total_steps(v: V) -> int:
    return int(v.resources.plan.total_steps)


def periodic_save_due(v: V) -> bool:
    n, every = steps_done(v), int(v.config.save_every)
    return every > 0 and n % every == 0 and n < total_steps(v)


def save_due(v: V) -> bool:
    """Every ``save_every`` steps; and after the step in flight when the attempt is preempted
    (a *preemption* checkpoint), unless that step's checkpoint is on record."""
    if periodic_save_due(v):
        return True
    n = steps_done(v)
    inflight = bool(v.resources.pipeline.inflight)
    return v.preempted and not inflight and n < total_steps(v) and not checkpoint_at(v, n)


def preemption_pending(v: V) -> bool:
    """A preempted attempt runs on while steps are in flight (the next ``await_future``
    drains them all) or awaited but not yet logged; the checkpoint follows."""
    p = v.resources.pipeline
    return v.preempted and bool(p.inflight or p.ready)


def checkpoint_at(v: V, step: int) -> bool:
    live = v.state.live_checkpoints()
    return bool(live) and live[-1].step == step


def eval_due(v: V) -> bool:
    n, every = steps_done(v), int(v.config.eval_every)
    return every > 0 and n % every == 0 and n < total_steps(v)


def more_batches(v: V) -> bool:
    c = v.resources.cursor
    return c.batch_index < v.resources.plan.batches_per_epoch and c.step < total_steps(v)


def more_epochs(v: V) -> bool:
    c = v.resources.cursor
    return c.epoch + 1 < int(v.config.num_epochs) and c.step < total_steps(v)


def more_steps(v: V) -> bool:
    return steps_done(v) < total_steps(v)


def final_checkpoint_due(v: V) -> bool:
    return not checkpoint_at(v, steps_done(v))


def eval_at_start(v: V) -> bool:
    return steps_done(v) == 0


CONDITIONS: Mapping[str, Any] = {
    "save_due": save_due,
    "eval_due": eval_due,
    "more_batches": more_batches,
    "more_epochs": more_epochs,
    "final_checkpoint_due": final_checkpoint_due,
    "eval_at_start": eval_at_start,
    PREEMPTION_PENDING: preemption_pending,
}

STEP_CONDITIONS: Mapping[str, Any] = {
    "save_due": save_due,
    "eval_due": eval_due,
    "more_steps": more_steps,
    "final_checkpoint_due": final_checkpoint_due,
    "eval_at_start": eval_at_start,
    PREEMPTION_PENDING: preemption_pending,
}


def drain_due(v: V, interrupted: bool) -> bool:
    """Whether ``await_future`` must take every step in flight now: before the last step ends,
    a checkpoint, an evaluation or a stop, or when pipelining is off."""
    last = steps_done(v) >= total_steps(v) or not more_batches(v)
    return last or save_due(v) or eval_due(v) or interrupted or not bool(v.config.pipeline)
