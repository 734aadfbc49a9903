"""A step's metrics with tinker-cookbook's names.

``env/all/…``: rewards and env metrics over every trajectory, token counts, and the by-group
fractions (a group is *mixed* when its rewards differ, *all good* when they are equal and at
least 0.5, *all bad* otherwise). ``optim/…``: how far the trainer's log-probs of the sampled
tokens are from the sampler's (``kl_sample_train_v1`` the mean difference, ``v2`` half the mean
squared difference) and the sampler's entropy estimate (minus the mean sampled log-prob).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kitchen.types import TensorData
from kitchen.workflows.rl.env import TrajectoryGroup

GOOD = 0.5


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def by_group(groups: Sequence[TrajectoryGroup]) -> dict[str, float]:
    mixed = good = bad = 0
    for g in groups:
        rewards = g.get_total_rewards()
        if any(r != rewards[0] for r in rewards):
            mixed += 1
        elif rewards[0] >= GOOD:
            good += 1
        else:
            bad += 1
    n = max(len(groups), 1)
    return {
        "env/all/by_group/frac_mixed": mixed / n,
        "env/all/by_group/frac_all_good": good / n,
        "env/all/by_group/frac_all_bad": bad / n,
    }


def env_metrics(groups: Sequence[TrajectoryGroup]) -> dict[str, float]:
    totals = [r for g in groups for r in g.get_total_rewards()]
    transitions = [t for g in groups for tr in g.trajectories for t in tr.transitions]
    out: dict[str, float] = {
        "env/all/reward/total": _mean(totals),
        "env/all/total_episodes": float(len(totals)),
        "env/all/total_turns": float(len(transitions)),
        "env/all/ac_tokens_per_turn": _mean([len(t.tokens) for t in transitions]),
        "env/all/ob_tokens_per_turn": _mean([t.ob.length for t in transitions]),
        "env/all/total_ac_tokens": float(sum(len(t.tokens) for t in transitions)),
        "env/all/total_ob_tokens": float(sum(t.ob.length for t in transitions)),
    }
    names = sorted({k for t in transitions for k in t.metrics})
    for name in names:
        out[f"env/all/{name}"] = _mean([t.metrics.get(name, 0.0) for t in transitions])
    out.update(by_group(groups))
    return out


def kl_metrics(
    sampled: Sequence[TensorData], trained: Sequence[TensorData], masks: Sequence[Sequence[float]]
) -> dict[str, Any]:
    """KL and entropy estimates over the completion tokens of the batch."""
    diffs: list[float] = []
    sampler_lps: list[float] = []
    for s, t, mask in zip(sampled, trained, masks, strict=True):
        for q, p, m in zip(s.data, t.data, mask, strict=True):
            if m > 0:
                diffs.append(float(q) - float(p))
                sampler_lps.append(float(q))
    return {
        "optim/kl_sample_train_v1": _mean(diffs),
        "optim/kl_sample_train_v2": 0.5 * _mean([d * d for d in diffs]),
        "optim/entropy": -_mean(sampler_lps),
    }
