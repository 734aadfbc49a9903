"""The training loop's bookkeeping that workflows share: data cursor, plan, LR schedule."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from kitchen.types import AdamParams, Datum


@dataclass
class Cursor:
    """Where the data order stands: saved in every checkpoint, restored on resume.

    ``epoch`` is -1 before the first ``set_epoch``; ``batch_index`` is the next batch of that
    epoch; ``step`` is the next global step (= optimizer steps submitted so far).
    """

    epoch: int = -1
    batch_index: int = 0
    step: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch_index": self.batch_index, "step": self.step}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cursor:
        return cls(int(d["epoch"]), int(d["batch_index"]), int(d["step"]))


@dataclass(frozen=True)
class Plan:
    examples: int
    batch_size: int
    batches_per_epoch: int
    total_steps: int


@dataclass
class InFlight:
    """A step whose forward_backward and optim_step were submitted but not yet awaited."""

    step: int
    epoch: int
    fb: Any
    optim: Any
    learning_rate: float
    num_sequences: int
    num_tokens: int
    num_loss_tokens: float
    submitted_at: float


@dataclass
class Pipeline:
    inflight: dict[int, InFlight] = field(default_factory=dict)
    ready: dict[int, dict[str, Any]] = field(default_factory=dict)
    last_done_at: float | None = None


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The data order of one epoch: a seeded shuffle, so (seed, epoch) alone recreates it."""
    order = list(range(n))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return order


def lr_multiplier(schedule: str, step: int, total_steps: int) -> float:
    """tinker-cookbook's schedules: constant, linear decay to 0, cosine decay to 0."""
    if schedule == "constant":
        return 1.0
    frac = step / max(total_steps, 1)
    if schedule == "linear":
        return 1.0 - frac
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"unknown lr_schedule {schedule!r}")


def adam_params(cfg: Any, step: int, total_steps: int) -> AdamParams:
    """The optimizer settings of ``step``: the config's Adam keys, the scheduled learning rate."""
    lr = cfg.learning_rate * lr_multiplier(cfg.lr_schedule, step, total_steps)
    return AdamParams(
        learning_rate=lr,
        beta1=cfg.adam_beta1,
        beta2=cfg.adam_beta2,
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
        grad_clip_norm=cfg.grad_clip_norm,
    )


def datum_sizes(data: list[Datum]) -> list[tuple[int, float]]:
    """(num_tokens, num_loss_tokens) of every datum, computed once so a step only adds them."""
    return [(d.model_input.length, float(sum(d.loss_fn_inputs["weights"].data))) for d in data]


def batch_stats(sizes: list[tuple[int, float]], idx: list[int]) -> tuple[int, int, float]:
    """(num_sequences, num_tokens, num_loss_tokens) of the batch of data indices ``idx``."""
    tokens = 0
    loss_tokens = 0.0
    for i in idx:
        n, w = sizes[i]
        tokens += n
        loss_tokens += w
    return len(idx), tokens, loss_tokens
