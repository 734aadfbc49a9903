"""get_batch: take the next batch of pairs in the epoch's order and advance the cursor."""

from __future__ import annotations

from kitchen.stage_api import StageResult
from kitchen.workflows.preference.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    r, bs = ctx.resources, ctx.config.batch_size
    c = r.cursor
    idx = r.order[c.batch_index * bs : (c.batch_index + 1) * bs]
    step = c.step
    c.batch_index += 1
    c.step += 1
    r.batch = (step, idx)
    return StageResult({"num_pairs": len(idx)}, step=step, epoch=c.epoch)
