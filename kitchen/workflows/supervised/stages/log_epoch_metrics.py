"""log_epoch_metrics: summarise the epoch that just ended from the logged step metrics."""

from __future__ import annotations

from typing import Any

from kitchen.stage_api import StageResult
from kitchen.workflows.supervised.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    epoch = ctx.resources.cursor.epoch
    losses = [
        m["train_mean_nll"]
        for m in ctx.state.step_metrics.values()
        if m.get("epoch") == epoch and "train_mean_nll" in m
    ]
    out: dict[str, Any] = {"steps_logged": len(losses)}
    if losses:
        out["epoch_mean_nll"] = sum(losses) / len(losses)
    return StageResult(out, epoch=epoch)
