"""get_batch: take the next batch of the epoch's order and advance the cursor."""

from __future__ import annotations

from typing import Any

from kitchen.stages._common import batch_stats


def run(ctx: Any) -> dict[str, Any]:
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
    return {"step": step, "epoch": c.epoch, "num_sequences": n_seq, "num_tokens": n_tok}
