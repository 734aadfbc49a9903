"""Group-relative advantages, as tinker-cookbook computes them.

Each trajectory's advantage is its total reward minus the mean of its group: the group is the
baseline, so no value model is needed. Dividing by the group's standard deviation is off by
default (tinker-cookbook does not; TRL's GRPO does, with the sample std + 1e-4, which is what
``by_std`` reproduces). A group whose rewards are all equal has zero advantages and adds no
gradient; ``remove_constant_reward_groups`` drops such groups from the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from kitchen.workflows.rl.env import TrajectoryGroup

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
