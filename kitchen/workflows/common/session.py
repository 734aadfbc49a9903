"""Opening clients: the policy (fresh, resumed, or from a parent run's weights), the weights a
run *started* from, which a frozen reference needs whatever the resume point, and a sampler on
the weights of a saved training state (a teacher's, or a checkpoint ``kitchen sample`` reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kitchen.ports import SamplingClient, ServiceClient, TrainingClient
from kitchen.stage_api import Preflight, StageContext
from kitchen.workflows.common.config import TrainingConfig


def base_model(ctx: StageContext[TrainingConfig, Any] | Preflight[TrainingConfig]) -> str:
    """The base model the LoRA sits on: ``model_name``, or a parent that is itself a base."""
    parent = ctx.lineage.get("parent")
    if parent is not None and parent.kind == "base_model":
        return ctx.lineage_paths["parent"]
    return ctx.config.model_name


def _fresh(ctx: StageContext[TrainingConfig, Any]) -> TrainingClient:
    cfg = ctx.config
    return ctx.ports.training.create_lora_training_client(
        base_model(ctx),
        cfg.lora_rank,
        seed=cfg.seed,
        alpha=cfg.lora_alpha,
        dropout=cfg.lora_dropout,
    )


def _load_parent(ctx: StageContext[TrainingConfig, Any], client: TrainingClient) -> str | None:
    """Load a parent run's weights (no optimizer) into ``client``; its source, or None."""
    parent = ctx.lineage.get("parent")
    if parent is None or parent.kind == "base_model":
        return None
    client.load_state(ctx.lineage_paths["parent"], with_optimizer=False).result()
    return parent.source


def open_start(ctx: StageContext[TrainingConfig, Any]) -> TrainingClient:
    """A client holding the weights the run started from, never the resumed ones: the fresh
    LoRA of the run's seed (its B matrices are zero, so it is the base model) or the parent's."""
    client = _fresh(ctx)
    _load_parent(ctx, client)
    return client


def open_policy(ctx: StageContext[TrainingConfig, Any]) -> tuple[TrainingClient, dict[str, Any]]:
    """The client and what to log about it (the backend, what was loaded)."""
    client = _fresh(ctx)
    out: dict[str, Any] = {"model_name": base_model(ctx)}
    if ctx.resume is not None:
        saved = client.load_state(ctx.resume.state_ref(), with_optimizer=True).result()
        out["loaded_checkpoint"] = ctx.resume.checkpoint.name
        out["loaded_step"] = saved.step
        return client, out
    source = _load_parent(ctx, client)
    if source is not None:
        out["parent"] = source
    return client, out


def open_sampler_from_state(
    service: ServiceClient,
    path: str,
    *,
    base_model: str,
    rank: int,
    seed: int,
    alpha: int | None = None,
    dropout: float = 0.0,
) -> SamplingClient:
    """A sampling client on the weights of a training state folder (weights only): loaded
    into a training client on ``base_model``, snapshotted, and the training client closed."""
    trainer = service.create_training_client_from_state(
        path,
        base_model=base_model,
        rank=rank,
        seed=seed,
        alpha=alpha,
        dropout=dropout,
        with_optimizer=False,
    )
    try:
        return trainer.sampling_client()
    finally:
        trainer.close()


def open_frozen(
    ctx: StageContext[Any, Any], role: str, base: str
) -> tuple[SamplingClient, dict[str, Any]]:
    """A frozen sampling client of the weights launch resolved for ``role`` (a teacher, a
    judge), and what to log about it: a base model sampled as is, an adapter folder (or remote
    reference) on ``base``, or a training state folder loaded (weights only) on ``base``.
    Closed when the attempt ends."""
    ref = ctx.lineage[role]
    path = ctx.lineage_paths[role]
    service, cfg = ctx.ports.training, ctx.config
    out: dict[str, Any] = {role: ref.source, "kind": ref.kind, "sha256": ref.sha256}
    if ref.kind == "base_model":
        client = service.create_sampling_client(base_model=path, seed=cfg.seed)
        out["base_model"] = path
    elif "://" in path or (Path(path) / "adapter_config.json").is_file():
        client = service.create_sampling_client(base_model=base, model_path=path, seed=cfg.seed)
        out["base_model"] = base
    else:
        client = open_sampler_from_state(
            service, path, base_model=base, rank=cfg.lora_rank, seed=cfg.seed
        )
        out["base_model"] = base
    ctx.on_close(client.close)
    return client, out
