"""optim_step: submit the optimizer step with this step's scheduled learning rate."""

from __future__ import annotations

from typing import Any

from kitchen.stages._common import lr_multiplier
from kitchen.types import AdamParams


def run(ctx: Any) -> dict[str, Any]:
    cfg, r = ctx.config, ctx.resources
    step, _ = r.batch
    lr = cfg.learning_rate * lr_multiplier(cfg.lr_schedule, step, r.plan.total_steps)
    params = AdamParams(
        learning_rate=lr,
        beta1=cfg.adam_beta1,
        beta2=cfg.adam_beta2,
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
        grad_clip_norm=cfg.grad_clip_norm,
    )
    flight = r.pipeline.inflight[step]
    flight.optim = r.training.optim_step(params)
    flight.learning_rate = lr
    return {"step": step, "learning_rate": lr}
