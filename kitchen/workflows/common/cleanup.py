"""cleanup: release the training session (the worker thread, the model's memory) now, rather
than when the attempt ends."""

from __future__ import annotations

from typing import Any

from kitchen.stage_api import StageContext, StageResult


def run(ctx: StageContext[Any, Any]) -> StageResult:
    ctx.ports.training.close()
    return StageResult({"closed": True})
