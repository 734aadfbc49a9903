"""init_tokenizer: the base model's tokenizer and the chat renderer on it.

Taken from the factory, without loading a model: the pairs are rendered and the reference is
computed before the policy's session is opened.
"""

from __future__ import annotations

from kitchen.renderers import get_renderer
from kitchen.stage_api import StageResult
from kitchen.workflows.common.session import base_model
from kitchen.workflows.preference.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    tokenizer = ctx.ports.training.get_tokenizer(base_model(ctx))
    ctx.resources.tokenizer = tokenizer
    ctx.resources.renderer = get_renderer(ctx.config.renderer_name, tokenizer)
    size = len(tokenizer)  # type: ignore[arg-type]  # HF tokenizers have a length
    return StageResult({"renderer": ctx.config.renderer_name, "vocab_size": size})
