"""load_dataset: read the training rows and the held-out rows through the DatasetStore."""

from __future__ import annotations

from kitchen.stage_api import StageResult
from kitchen.workflows.common.data import load_rows
from kitchen.workflows.supervised.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    return load_rows(ctx, ("messages",))
