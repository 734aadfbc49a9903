"""init_session: create the policy's training client through the factory port.

A fresh LoRA on ``model_name``; on resume, the checkpoint's state (with its optimizer); when the
run was started from other weights (``load_checkpoint_path``), those weights without an optimizer.
"""

from __future__ import annotations

from kitchen.stage_api import StageContext, StageResult
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.resources import TrainingResources
from kitchen.workflows.common.session import open_policy

Ctx = StageContext[TrainingConfig, TrainingResources]


def run(ctx: Ctx) -> StageResult:
    client, out = open_policy(ctx)
    ctx.resources.training = client
    return StageResult(out)
