"""get_batch: take the next batch of the epoch's order and advance the cursor."""

from __future__ import annotations

from kitchen.stage_api import StageResult
from kitchen.workflows.common.loop import batch_stats
from kitchen.workflows.supervised.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    r, bs = ctx.resources, ctx.config.batch_size
    c = r.cursor
    idx = r.order[c.batch_index * bs : (c.batch_index + 1) * bs]
    batch = [r.data[i] for i in idx]
    step = c.step
    c.batch_index += 1
    c.step += 1
    r.batch = (step, batch)
    n_seq, n_tok, n_loss = batch_stats(r.sizes, idx)
    r.batch_stats = (n_seq, n_tok, n_loss)
    return StageResult({"num_sequences": n_seq, "num_tokens": n_tok}, step=step, epoch=c.epoch)
