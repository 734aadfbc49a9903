"""The epochs of a supervised-style loop: shared by every workflow that trains on a fixed list
of data (supervised training, off-policy distillation)."""

from __future__ import annotations

from kitchen.stage_api import StageContext, StageResult
from kitchen.types import Datum
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.epochs import plan_epochs
from kitchen.workflows.common.loop import datum_sizes
from kitchen.workflows.supervised.resources import SupervisedResources

Ctx = StageContext[TrainingConfig, SupervisedResources]


def start_epochs(ctx: Ctx, data: list[Datum], per_epoch: int) -> StageResult:
    """Put ``data`` (and each datum's sizes) into ``ctx.resources`` and plan the epochs over
    it (``plan_epochs``). The result of a dataset-building stage."""
    r = ctx.resources
    r.data = data
    r.sizes = datum_sizes(data)
    return plan_epochs(ctx, per_epoch, {"examples": len(data)})
