"""The RL workflow's predicates: the shared checkpoint and evaluation schedule, and one more
step while the plan has steps left."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kitchen.workflows.common.conditions import (
    V,
    eval_at_start,
    eval_due,
    final_checkpoint_due,
    save_due,
    steps_done,
    total_steps,
)


def more_steps(v: V) -> bool:
    return steps_done(v) < total_steps(v)


CONDITIONS: Mapping[str, Any] = {
    "save_due": save_due,
    "eval_due": eval_due,
    "more_steps": more_steps,
    "final_checkpoint_due": final_checkpoint_due,
    "eval_at_start": eval_at_start,
}
