"""log_epoch_metrics: summarise the epoch that just ended from the logged step metrics.

``steps_logged`` counts the epoch's steps; each step metric the workflow averages (its
``epoch_means``, carried on this stage as the ``means`` option: step metric → output key) is
the mean over the steps that logged it, left out when none did.
"""

from __future__ import annotations

from typing import Any

from kitchen.stage_api import StageContext, StageResult
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.resources import EpochResources

Ctx = StageContext[TrainingConfig, EpochResources]


def run(ctx: Ctx) -> StageResult:
    epoch = ctx.resources.cursor.epoch
    steps = [m for m in ctx.state.step_metrics.values() if m.get("epoch") == epoch]
    out: dict[str, Any] = {"steps_logged": len(steps)}
    for key, name in ctx.stage.option("means", ()):
        values = [float(m[key]) for m in steps if key in m]
        if values:
            out[name] = sum(values) / len(values)
    return StageResult(out, epoch=epoch)
