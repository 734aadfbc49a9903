"""init_teacher: open the frozen teacher beside the student (a set-up stage: every attempt
opens it again from the weights on record, whose sha256 launch checked before the attempt)."""

from __future__ import annotations

from typing import Any

from kitchen.stage_api import StageContext, StageResult
from kitchen.workflows.distillation.teacher import open_teacher


def run(ctx: StageContext[Any, Any]) -> StageResult:
    client, out = open_teacher(ctx)
    ctx.resources.teacher = client
    return StageResult(out)
