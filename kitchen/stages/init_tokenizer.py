"""init_tokenizer: take the model's tokenizer and build the chat renderer on it."""

from __future__ import annotations

from typing import Any

from kitchen.renderers import get_renderer


def run(ctx: Any) -> dict[str, Any]:
    tokenizer = ctx.resources.training.get_tokenizer()
    ctx.resources.tokenizer = tokenizer
    ctx.resources.renderer = get_renderer(ctx.config.renderer_name, tokenizer)
    return {"renderer": ctx.config.renderer_name, "vocab_size": len(tokenizer)}
