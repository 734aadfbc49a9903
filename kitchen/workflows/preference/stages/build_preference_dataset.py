"""build_preference_dataset: render every pair into (chosen, rejected) data and plan the steps.

On resume the data cursor comes back from the checkpoint and the epoch's pair order is rebuilt
from (seed, epoch), so the next batch is exactly the one the checkpoint was waiting for.
"""

from __future__ import annotations

from typing import Any

from kitchen.errors import ConfigError
from kitchen.stage_api import StageResult
from kitchen.workflows.common.epochs import plan_epochs
from kitchen.workflows.preference.data import render_pair
from kitchen.workflows.preference.resources import Ctx, Pair


def _render(ctx: Ctx, rows: list[dict[str, Any]]) -> tuple[list[Pair], int]:
    pairs: list[Pair] = []
    for row in rows:
        pair = render_pair(ctx.resources.renderer, row, ctx.config.max_length)
        if pair is not None:
            pairs.append(pair)
    return pairs, len(rows) - len(pairs)


def run(ctx: Ctx) -> StageResult:
    cfg, r = ctx.config, ctx.resources
    pairs, dropped = _render(ctx, r.train_rows)
    test_pairs, _ = _render(ctx, r.test_rows[: cfg.eval_examples])
    per_epoch = len(pairs) // cfg.batch_size
    if per_epoch == 0:
        raise ConfigError(
            f"dataset {cfg.dataset!r} has {len(pairs)} usable pairs, fewer than "
            f"batch_size={cfg.batch_size}"
        )
    r.pairs, r.test_pairs = pairs, test_pairs
    out = {"pairs": len(pairs), "test_pairs": len(test_pairs), "dropped_by_max_length": dropped}
    return plan_epochs(ctx, per_epoch, out)
