"""log_epoch_metrics: summarise the epoch that just ended from the logged step metrics."""

from __future__ import annotations

from typing import Any

from kitchen.stage_api import StageResult
from kitchen.workflows.preference.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    epoch = ctx.resources.cursor.epoch
    steps = [m for m in ctx.state.step_metrics.values() if m.get("epoch") == epoch]
    out: dict[str, Any] = {"steps_logged": len(steps)}
    for key in ("dpo_loss", "accuracy"):
        values = [float(m[key]) for m in steps if key in m]
        if values:
            out[f"epoch_mean_{key}"] = sum(values) / len(values)
    return StageResult(out, epoch=epoch)
