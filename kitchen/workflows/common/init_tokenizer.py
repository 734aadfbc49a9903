"""init_tokenizer: take the model's tokenizer and build the chat renderer on it."""

from __future__ import annotations

from kitchen.renderers import get_renderer
from kitchen.stage_api import StageContext, StageResult
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.resources import TrainingResources

Ctx = StageContext[TrainingConfig, TrainingResources]


def run(ctx: Ctx) -> StageResult:
    tokenizer = ctx.resources.training.get_tokenizer()
    ctx.resources.tokenizer = tokenizer
    ctx.resources.renderer = get_renderer(ctx.config.renderer_name, tokenizer)
    size = len(tokenizer)  # type: ignore[arg-type]  # HF tokenizers have a length
    return StageResult({"renderer": ctx.config.renderer_name, "vocab_size": size})
