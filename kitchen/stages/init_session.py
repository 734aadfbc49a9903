"""init_session: create the training client; on resume, load the checkpoint into it."""

from __future__ import annotations

from typing import Any

from kitchen.adapters import registry


def run(ctx: Any) -> dict[str, Any]:
    cfg = ctx.config
    client = registry.training_client(cfg)
    ctx.resources.training = client
    ctx.resources.closers = [*getattr(ctx.resources, "closers", []), client.close]
    out: dict[str, Any] = {"model_name": cfg.model_name, "backend": cfg.training_adapter}
    if ctx.resume is not None and ctx.resume.checkpoint is not None:
        saved = client.load_state(ctx.resume.path / "state", with_optimizer=True).result()
        out["loaded_checkpoint"] = ctx.resume.checkpoint.name
        out["loaded_step"] = saved.step
    return out
