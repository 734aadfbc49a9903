"""The RL workflow's predicates: the shared checkpoint and evaluation schedule, and one more
step while the plan has steps left (those of every plain step loop, kept importable here)."""

from __future__ import annotations

from kitchen.workflows.common.conditions import STEP_CONDITIONS as CONDITIONS
from kitchen.workflows.common.conditions import more_steps

__all__ = ["CONDITIONS", "more_steps"]
