"""set_epoch: start the next epoch with its own seeded order of the examples."""

from __future__ import annotations

from kitchen.stage_api import StageContext, StageResult
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.loop import epoch_order
from kitchen.workflows.common.resources import EpochResources

Ctx = StageContext[TrainingConfig, EpochResources]


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    r.cursor.epoch += 1
    r.cursor.batch_index = 0
    r.order = epoch_order(r.examples, ctx.config.seed, r.cursor.epoch)
    return StageResult(step=r.cursor.step, epoch=r.cursor.epoch)
