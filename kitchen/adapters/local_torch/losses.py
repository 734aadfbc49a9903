"""The built-in losses of ``forward_backward``, with tinker's formulas and its sum reduction.

Each loss takes the learner's per-position target logprobs ([B, T], 0 in the padding) and the
datum inputs packed alongside them, and returns a scalar. Every reduction is a plain sum over
positions and data, as in tinker: normalising (per token, per sequence) is the caller's choice,
made through ``weights`` or ``advantages``, never hidden here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kitchen.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

PPO_CLIP_LOW = 0.8
PPO_CLIP_HIGH = 1.2
"""tinker's default ratio bounds (1 - 0.2, 1 + 0.2)."""

LossInputs = Mapping[str, "torch.Tensor"]
LossConfig = Mapping[str, float]


def cross_entropy(logprobs: torch.Tensor, inputs: LossInputs, config: LossConfig) -> torch.Tensor:
    """Sum of weight × −log p(target): the supervised loss."""
    return -(logprobs * inputs["weights"]).sum()


def importance_sampling(
    logprobs: torch.Tensor, inputs: LossInputs, config: LossConfig
) -> torch.Tensor:
    """REINFORCE corrected by p/q, q being the sampler's logprobs of the same tokens."""
    import torch

    ratio = torch.exp(logprobs - inputs["logprobs"])
    return -(ratio * inputs["advantages"]).sum()


def ppo(logprobs: torch.Tensor, inputs: LossInputs, config: LossConfig) -> torch.Tensor:
    """Per-token clipped surrogate: the pessimistic minimum of the clipped and raw objectives."""
    import torch

    low = float(config.get("clip_low_threshold", PPO_CLIP_LOW))
    high = float(config.get("clip_high_threshold", PPO_CLIP_HIGH))
    ratio = torch.exp(logprobs - inputs["logprobs"])
    advantages = inputs["advantages"]
    clipped = torch.clamp(ratio, low, high) * advantages
    return -torch.minimum(ratio * advantages, clipped).sum()


LossFn = Callable[["torch.Tensor", LossInputs, LossConfig], "torch.Tensor"]


@dataclass(frozen=True, slots=True)
class BuiltinLoss:
    fn: LossFn
    inputs: tuple[str, ...]
    config_keys: frozenset[str] = frozenset()


BUILTIN: dict[str, BuiltinLoss] = {
    "cross_entropy": BuiltinLoss(cross_entropy, ("target_tokens", "weights")),
    "importance_sampling": BuiltinLoss(
        importance_sampling, ("target_tokens", "logprobs", "advantages")
    ),
    "ppo": BuiltinLoss(
        ppo,
        ("target_tokens", "logprobs", "advantages"),
        frozenset({"clip_low_threshold", "clip_high_threshold"}),
    ),
}


def builtin(name: str, config: LossConfig | None) -> BuiltinLoss:
    """Look a loss up by name and refuse config keys it would silently ignore."""
    loss = BUILTIN.get(name)
    if loss is None:
        raise ConfigError(f"unknown loss_fn {name!r}: use one of {', '.join(sorted(BUILTIN))}")
    unknown = sorted(set(config or {}) - loss.config_keys)
    if unknown:
        allowed = ", ".join(sorted(loss.config_keys)) or "none"
        raise ConfigError(f"loss {name} takes no config key {unknown[0]!r} (allowed: {allowed})")
    return loss
