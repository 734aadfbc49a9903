"""The epochs of a supervised-style loop: shared by every workflow that trains on a fixed list
of data (supervised training, off-policy distillation)."""

from __future__ import annotations

from typing import Any

from kitchen.stage_api import StageContext, StageResult
from kitchen.types import Datum
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.loop import Cursor, Pipeline, Plan, datum_sizes, epoch_order
from kitchen.workflows.supervised.resources import SupervisedResources

Ctx = StageContext[TrainingConfig, SupervisedResources]


def start_epochs(ctx: Ctx, data: list[Datum], per_epoch: int) -> StageResult:
    """Plan the epochs over ``data`` into ``ctx.resources`` (data, sizes, plan, a fresh
    pipeline and cursor), the cursor taken back from the checkpoint on resume, and the
    epoch's order rebuilt from (seed, epoch), so the next batch is exactly the one the
    checkpoint was waiting for. The result of a dataset-building stage."""
    cfg, r = ctx.config, ctx.resources
    total = per_epoch * cfg.num_epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    r.data = data
    r.sizes = datum_sizes(data)
    r.plan = Plan(len(data), cfg.batch_size, per_epoch, total)
    r.pipeline = Pipeline()
    r.cursor = Cursor()
    out: dict[str, Any] = {"examples": len(data), "batches_per_epoch": per_epoch}
    if ctx.resume is not None:
        r.cursor = Cursor.from_dict(ctx.resume.checkpoint.cursor)
        if r.cursor.epoch >= 0:
            r.order = epoch_order(len(data), cfg.seed, r.cursor.epoch)
        out["cursor"] = r.cursor.as_dict()
    return StageResult(out, total_steps=total)
