"""load_dataset: read the training pairs and the held-out pairs through the DatasetStore.

Launch checked the training rows before the run existed; the held-out rows are checked here
with the same rule, so a bad one fails the run in one line naming its row.
"""

from __future__ import annotations

from kitchen.stage_api import StageResult
from kitchen.workflows.common.data import load_rows
from kitchen.workflows.preference.data import COLUMNS, check_pair_row
from kitchen.workflows.preference.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    return load_rows(ctx, COLUMNS, check_pair_row)
