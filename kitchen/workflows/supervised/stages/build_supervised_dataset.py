"""build_supervised_dataset: render every chat row into a Datum and plan the steps.

On resume the data cursor comes back from the checkpoint, and the epoch's order is rebuilt
from (seed, epoch), so the next batch is exactly the one the checkpoint was waiting for.
"""

from __future__ import annotations

from kitchen.errors import ConfigError
from kitchen.renderers import TrainOnWhat, datum_from_model_input_weights
from kitchen.stage_api import StageResult
from kitchen.workflows.supervised.epochs import start_epochs
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
    return start_epochs(ctx, data, per_epoch)
