"""compute_advantages: rewards → group-relative advantages → the step's training data, its
advantages scaled for ``loss_aggregation``.

A pure function of the recorded rollouts, so a re-executed step builds the same data."""

from __future__ import annotations

from kitchen.stage_api import StageResult
from kitchen.workflows.rl.advantages import (
    aggregate,
    compute_advantages,
    remove_constant_reward_groups,
)
from kitchen.workflows.rl.data import assemble
from kitchen.workflows.rl.metrics import env_metrics
from kitchen.workflows.rl.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    cfg, b = ctx.config, ctx.resources.batch
    b.metrics.update(env_metrics(b.groups))
    groups = b.groups
    if cfg.remove_constant_reward_groups:
        groups = remove_constant_reward_groups(groups)
    advantages = compute_advantages(groups, cfg.advantages_by_std)
    data, b.masks = assemble(groups, advantages)
    b.data = aggregate(data, b.masks, cfg.loss_aggregation, cfg.max_tokens)
    b.metrics["optim/groups_trained"] = float(len(groups))
    return StageResult({"data": len(b.data), "groups": len(groups)}, step=b.step)
