"""load_dataset: read the training pairs and the held-out pairs through the DatasetStore.

Launch checked the training rows before the run existed; the held-out rows are checked here
with the same rule, so a bad one fails the run in one line naming its row.
"""

from __future__ import annotations

from kitchen.stage_api import StageResult
from kitchen.workflows.common.data import train_and_test
from kitchen.workflows.preference.data import COLUMNS, check_pair_row
from kitchen.workflows.preference.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    cfg = ctx.config
    train, test = train_and_test(ctx.ports.datasets, cfg.dataset, cfg.test_size, COLUMNS)
    for i, row in enumerate(test):
        check_pair_row(f"{cfg.dataset} (held-out)", i, row)
    ctx.resources.train_rows = train
    ctx.resources.test_rows = test
    return StageResult({"train_rows": len(train), "test_rows": len(test), "dataset": cfg.dataset})
