"""The supervised workflow's predicates: the shared training-loop ones (kept importable here)."""

from __future__ import annotations

from kitchen.workflows.common.conditions import (
    CONDITIONS,
    eval_at_start,
    eval_due,
    final_checkpoint_due,
    more_batches,
    more_epochs,
    save_due,
    steps_done,
    total_steps,
)

__all__ = [
    "CONDITIONS",
    "eval_at_start",
    "eval_due",
    "final_checkpoint_due",
    "more_batches",
    "more_epochs",
    "save_due",
    "steps_done",
    "total_steps",
]
