"""build_supervised_dataset: render every chat row into a Datum and plan the steps.

On resume the data cursor comes back from the checkpoint, and the epoch's order is rebuilt
from (seed, epoch), so the next batch is exactly the one the checkpoint was waiting for.
"""

from __future__ import annotations

from typing import Any

from kitchen.errors import ConfigError
from kitchen.renderers import TrainOnWhat, datum_from_model_input_weights
from kitchen.stage_api import StageResult
from kitchen.workflows.common.loop import Cursor, Pipeline, Plan, datum_sizes, epoch_order
from kitchen.workflows.supervised.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    cfg, r = ctx.config, ctx.resources
    how = TrainOnWhat(cfg.train_on_what)
    data = []
    for row in r.train_rows:
        mi, weights = r.renderer.build_supervised_example(row["messages"], how)
        data.append(datum_from_model_input_weights(mi, weights, cfg.max_length))
    per_epoch = len(data) // cfg.batch_size
    if per_epoch == 0:
        raise ConfigError(
            f"dataset {cfg.dataset!r} has {len(data)} rows, fewer than batch_size={cfg.batch_size}"
        )
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
