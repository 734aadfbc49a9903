"""Planning a loop in epochs over a fixed list of examples (supervised data, preference pairs,
a teacher's completions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kitchen.stage_api import StageContext, StageResult
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.loop import Cursor, Pipeline, Plan, epoch_order
from kitchen.workflows.common.resources import EpochResources

Ctx = StageContext[TrainingConfig, EpochResources]


def plan_epochs(ctx: Ctx, per_epoch: int, outputs: Mapping[str, Any]) -> StageResult:
    """Plan the epochs over the examples already in ``ctx.resources`` (the plan, a fresh
    pipeline and cursor), the cursor taken back from the checkpoint on resume, and the
    epoch's order rebuilt from (seed, epoch), so the next batch is exactly the one the
    checkpoint was waiting for. The result of a dataset-building stage: ``outputs``, then
    ``batches_per_epoch`` (and the ``cursor`` on resume)."""
    cfg, r = ctx.config, ctx.resources
    total = per_epoch * cfg.num_epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    r.plan = Plan(r.examples, cfg.batch_size, per_epoch, total)
    r.pipeline = Pipeline()
    r.cursor = Cursor()
    out: dict[str, Any] = {**outputs, "batches_per_epoch": per_epoch}
    if ctx.resume is not None:
        r.cursor = Cursor.from_dict(ctx.resume.checkpoint.cursor)
        if r.cursor.epoch >= 0:
            r.order = epoch_order(r.examples, cfg.seed, r.cursor.epoch)
        out["cursor"] = r.cursor.as_dict()
    return StageResult(out, total_steps=total)
