"""set_epoch: start the next epoch with its own seeded pair order."""

from __future__ import annotations

from kitchen.stage_api import StageResult
from kitchen.workflows.common.loop import epoch_order
from kitchen.workflows.preference.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    r.cursor.epoch += 1
    r.cursor.batch_index = 0
    r.order = epoch_order(len(r.pairs), ctx.config.seed, r.cursor.epoch)
    return StageResult(step=r.cursor.step, epoch=r.cursor.epoch)
