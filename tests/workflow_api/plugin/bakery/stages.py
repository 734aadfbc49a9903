"""The bakery's stages, written against kitchen's stage API only."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitchen.stage_api import Artifact, CheckpointSaved, StageContext, StageResult


@dataclass
class Bench:
    """The bakery's resources in one attempt."""

    oven: Any = None
    next_step: int = 0
    batch: list[float] = field(default_factory=list)
    loss: float = 0.0


Ctx = StageContext[Any, Bench]


def _dough(step: int) -> list[float]:
    return [((step * 7 + i * 3) % 5) / 5.0 for i in range(4)]


def knead(ctx: Ctx) -> StageResult:
    b = ctx.resources
    b.oven = ctx.ports.training.create_lora_training_client("dough", seed=ctx.config.seed)
    b.oven.attempt = ctx.attempt
    b.next_step = 0
    if ctx.resume is not None:
        b.oven.load_state(ctx.resume.state_ref("oven"))
        b.next_step = int(ctx.resume.checkpoint.cursor["next_step"])
    return StageResult({"oven": "hot"}, total_steps=int(ctx.config.steps))


def proof(ctx: Ctx) -> StageResult:
    b = ctx.resources
    step, b.next_step = b.next_step, b.next_step + 1
    b.batch = _dough(step)
    return StageResult(step=step)


def bake(ctx: Ctx) -> StageResult:
    b = ctx.resources
    step = b.oven.step
    b.loss = float(b.oven.forward_backward(b.batch, ctx.config.heat).result().metrics["loss:sum"])
    b.oven.optim_step(ctx.config.heat * 0.1).result()
    return StageResult(step=step, optim_step=step)


def taste(ctx: Ctx) -> StageResult:
    b = ctx.resources
    step = b.next_step - 1
    return StageResult(step=step, metrics={step: {"crumb_loss": b.loss}})


def shelve(ctx: Ctx) -> StageResult:
    b = ctx.resources
    n = b.next_step
    name = f"loaf-{n:04d}"

    def fill(tmp: Path) -> None:
        (tmp / "oven").mkdir()
        b.oven.save_state(tmp / "oven").result()

    ref = ctx.blobs.write_dir(f"{ctx.run_id}/shelf/{name}", fill)
    saved = CheckpointSaved(
        name=name,
        step=n,
        epoch=0,
        uri=ref.uri,
        sha256=ref.sha256,
        bytes=ref.bytes,
        machine_state=ctx.stage.slot,
        cursor={"next_step": n},
    )
    return StageResult({"name": name}, events=(saved,))


def box(ctx: Ctx) -> StageResult:
    b = ctx.resources

    def fill(tmp: Path) -> None:
        b.oven.save_weights_for_sampler(tmp).result()

    ref = ctx.blobs.write_dir(f"{ctx.run_id}/boxed", fill)
    loaf = Artifact(kind="final_weights", uri=ref.uri, sha256=ref.sha256, bytes=ref.bytes)
    weights = json.loads((ctx.blobs.local_path(ref.uri) / "loaf.json").read_text())
    return StageResult({"weights": [round(w, 12) for w in weights]}, artifacts=(loaf,))


def sweep(ctx: Ctx) -> StageResult:
    ctx.ports.training.close()
    return StageResult({"swept": True})
