"""Group-relative advantages, as tinker-cookbook computes them.

Each trajectory's advantage is its total reward minus the mean of its group: the group is the
baseline, so no value model is needed. Dividing by the group's standard deviation is off by
default (tinker-cookbook does not; TRL's GRPO does, with the sample std + 1e-4, which is what
``by_std`` reproduces). A group whose rewards are all equal has zero advantages and adds no
gradient; ``remove_constant_reward_groups`` drops such groups from the batch.

How the per-token losses add up (``loss_aggregation``) is also chosen here, through the
advantages, so the backend's loss stays tinker's plain sum over tokens and data:

- ``sum``: tinker-cookbook's, every completion token's term summed (each advantage as is);
- ``dapo``: DAPO's token-level mean, the sum over the batch's completion tokens divided by
  their number (each advantage over the batch's completion-token count);
- ``grpo``: GRPO's, each sequence's token mean, then the mean over sequences (each advantage
  over the number of sequences times that sequence's completion length);
- ``dr_grpo``: Dr. GRPO's, the sum divided by a constant, the number of sequences times
  ``max_tokens`` (each advantage over that constant).

A sequence is one datum (one turn of a multi-turn episode); the counts are over the data the
step trains on, after ``remove_constant_reward_groups``. The loss's gradient with respect to
each token's term is the scaled advantage, which is all the aggregation changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from kitchen.types import Datum, TensorData
from kitchen.workflows.rl.env import TrajectoryGroup

LossAggregation = Literal["sum", "dapo", "grpo", "dr_grpo"]

STD_EPS = 1e-4


def group_advantages(rewards: Sequence[float], by_std: bool = False) -> list[float]:
    """Reward minus the group mean; optionally over (sample std + 1e-4)."""
    mean = sum(rewards) / len(rewards)
    centred = [r - mean for r in rewards]
    if not by_std:
        return centred
    n = len(rewards)
    std = math.sqrt(sum(c * c for c in centred) / (n - 1)) if n > 1 else 0.0
    return [c / (std + STD_EPS) for c in centred]


def compute_advantages(
    groups: Sequence[TrajectoryGroup], by_std: bool = False
) -> list[list[float]]:
    return [group_advantages(g.get_total_rewards(), by_std) for g in groups]


def _constant(rewards: Sequence[float]) -> bool:
    return all(r == rewards[0] for r in rewards)


def remove_constant_reward_groups(groups: Sequence[TrajectoryGroup]) -> list[TrajectoryGroup]:
    """The groups whose rewards differ; if none do, the first group alone (a batch is never
    empty, so the step still runs and is logged; its gradient is zero)."""
    kept = [g for g in groups if not _constant(g.get_total_rewards())]
    return kept or list(groups[:1])


def aggregation_scales(
    masks: Sequence[Sequence[float]], mode: LossAggregation, max_tokens: int
) -> list[float]:
    """The factor on each datum's advantages that makes the summed loss ``mode``'s
    aggregation; ``masks`` marks each datum's completion tokens."""
    n = len(masks)
    if mode == "sum":
        return [1.0] * n
    if mode == "dapo":
        tokens = sum(sum(m) for m in masks)
        return [1.0 / max(tokens, 1.0)] * n
    if mode == "grpo":
        return [1.0 / (n * max(sum(m), 1.0)) for m in masks]
    return [1.0 / (n * max_tokens)] * n


def aggregate(
    data: Sequence[Datum],
    masks: Sequence[Sequence[float]],
    mode: LossAggregation,
    max_tokens: int,
) -> list[Datum]:
    """``data`` with each datum's advantages scaled for ``mode`` (``sum``: the same data)."""
    if mode == "sum":
        return list(data)
    out = []
    for datum, scale in zip(data, aggregation_scales(masks, mode, max_tokens), strict=True):
        inputs = dict(datum.loss_fn_inputs)
        advantages = inputs["advantages"].data
        inputs["advantages"] = TensorData.from_list([a * scale for a in advantages], "float32")
        out.append(Datum(datum.model_input, inputs))
    return out
