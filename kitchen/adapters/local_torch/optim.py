"""One AdamW for the whole run, re-tuned at every step.

The optimizer is built once and each ``optim_step`` writes its AdamParams into the param
group, so a learning-rate schedule is just a different number per step: no rebuild, no lost
moments, and the saved optimizer state stays valid across schedule changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from kitchen.errors import ConfigError
from kitchen.types import AdamParams

if TYPE_CHECKING:  # pragma: no cover
    import torch


def new_optimizer(params: Iterable[torch.nn.Parameter]) -> torch.optim.AdamW:
    """AdamW over ``params``; its hyper-parameters are placeholders until the first step."""
    import torch

    defaults = AdamParams(learning_rate=0.0)
    return torch.optim.AdamW(
        list(params),
        lr=defaults.learning_rate,
        betas=(defaults.beta1, defaults.beta2),
        eps=defaults.eps,
        weight_decay=defaults.weight_decay,
    )


def set_hyperparams(optimizer: torch.optim.Optimizer, adam: AdamParams) -> None:
    if adam.learning_rate < 0 or adam.eps < 0 or adam.weight_decay < 0:
        raise ConfigError(f"AdamParams must not be negative: {adam}")
    if not (0.0 <= adam.beta1 < 1.0 and 0.0 <= adam.beta2 < 1.0):
        raise ConfigError(f"AdamParams betas must be in [0, 1): {adam}")
    for group in optimizer.param_groups:
        group["lr"] = adam.learning_rate
        group["betas"] = (adam.beta1, adam.beta2)
        group["eps"] = adam.eps
        group["weight_decay"] = adam.weight_decay


def grad_norm(params: Iterable[torch.nn.Parameter]) -> float:
    """The global L2 norm of all gradients (0.0 when no gradient was accumulated)."""
    import torch

    norms = [torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None]
    if not norms:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(norms)))


def clip(params: Iterable[torch.nn.Parameter], norm: float, max_norm: float) -> None:
    """Scale gradients down to ``max_norm`` when they exceed it (0 disables clipping)."""
    if max_norm <= 0 or norm <= max_norm:
        return
    scale = max_norm / (norm + 1e-6)
    for p in params:
        if p.grad is not None:
            p.grad.mul_(scale)
