"""Opening the policy's training client: fresh, resumed, or from a parent run's weights."""

from __future__ import annotations

from typing import Any

from kitchen.ports import TrainingClient
from kitchen.stage_api import StageContext
from kitchen.workflows.common.config import TrainingConfig


def open_policy(ctx: StageContext[TrainingConfig, Any]) -> tuple[TrainingClient, dict[str, Any]]:
    """The client and what to log about it (the backend, what was loaded)."""
    cfg = ctx.config
    service = ctx.ports.training
    base = cfg.model_name
    parent = ctx.lineage.get("parent")
    if parent is not None and parent.kind == "base_model":
        base = ctx.lineage_paths["parent"]
    client = service.create_lora_training_client(
        base, cfg.lora_rank, seed=cfg.seed, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout
    )
    out: dict[str, Any] = {"model_name": base}
    if ctx.resume is not None:
        saved = client.load_state(ctx.resume.state_ref(), with_optimizer=True).result()
        out["loaded_checkpoint"] = ctx.resume.checkpoint.name
        out["loaded_step"] = saved.step
    elif parent is not None and parent.kind != "base_model":
        client.load_state(ctx.lineage_paths["parent"], with_optimizer=False).result()
        out["parent"] = parent.source
    return client, out
