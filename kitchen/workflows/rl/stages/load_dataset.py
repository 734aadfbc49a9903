"""load_dataset: read the training problems and the held-out problems."""

from __future__ import annotations

from kitchen.stage_api import StageResult
from kitchen.workflows.common.data import load_rows
from kitchen.workflows.rl.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    return load_rows(ctx, ("prompt",))
