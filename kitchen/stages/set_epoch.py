"""set_epoch: start the next epoch with its own seeded data order."""

from __future__ import annotations

from typing import Any

from kitchen.stages._common import epoch_order


def run(ctx: Any) -> dict[str, Any]:
    r = ctx.resources
    r.cursor.epoch += 1
    r.cursor.batch_index = 0
    r.order = epoch_order(len(r.data), ctx.config.seed, r.cursor.epoch)
    return {"epoch": r.cursor.epoch, "step": r.cursor.step}
