"""compute_advantages: the teacher scores the step's sampled tokens; reverse-KL advantages.

A pure function of the recorded rollouts and the frozen teacher, so a re-executed step builds
the same data. Every sequence's ``compute_logprobs`` is submitted before any is awaited.
"""

from __future__ import annotations

from kitchen.stage_api import StageResult
from kitchen.types import ModelInput
from kitchen.workflows.distillation.kl import (
    completion_logprobs,
    reverse_kl_advantages,
)
from kitchen.workflows.distillation.resources import OnPolicyCtx
from kitchen.workflows.rl.advantages import aggregate
from kitchen.workflows.rl.data import transition_datum
from kitchen.workflows.rl.metrics import env_metrics


def run(ctx: OnPolicyCtx) -> StageResult:
    cfg, r = ctx.config, ctx.resources
    b = r.batch
    b.metrics.update(env_metrics(b.groups))
    turns = [t for g in b.groups for tr in g.trajectories for t in tr.transitions]
    futures = [
        r.teacher.compute_logprobs(ModelInput.from_ints(t.ob.to_ints() + list(t.tokens)))
        for t in turns
    ]
    b.data, b.masks = [], []
    diffs: list[float] = []
    teacher_lps: list[float] = []
    for t, future in zip(turns, futures, strict=True):
        teacher = completion_logprobs(future.result(), t.ob.length)
        advantages = reverse_kl_advantages(t.logprobs, teacher, cfg.kl_penalty_coef)
        datum, mask = transition_datum(t, advantages)
        b.data.append(datum)
        b.masks.append(mask)
        diffs.extend(s - q for s, q in zip(t.logprobs, teacher, strict=True))
        teacher_lps.extend(teacher)
    b.data = aggregate(b.data, b.masks, cfg.loss_aggregation, cfg.max_tokens)
    n = max(len(diffs), 1)
    b.metrics["teacher_kl"] = sum(diffs) / n
    b.metrics["teacher_logprob"] = sum(teacher_lps) / n
    return StageResult({"data": len(b.data), "tokens": len(diffs)}, step=b.step)
