"""load_dataset: read the training problems and the held-out problems."""

from __future__ import annotations

from kitchen.stage_api import StageResult
from kitchen.workflows.common.data import train_and_test
from kitchen.workflows.rl.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    cfg = ctx.config
    train, test = train_and_test(ctx.ports.datasets, cfg.dataset, cfg.test_size, ("prompt",))
    ctx.resources.train_rows = train
    ctx.resources.test_rows = test
    return StageResult({"train_rows": len(train), "test_rows": len(test), "dataset": cfg.dataset})
