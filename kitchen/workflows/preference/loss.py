"""The DPO loss and its metrics, with tinker-cookbook's names.

Per pair: ``-log σ(β · ((log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))))``, the mean
over the batch; a sequence's log-probability is the weighted sum of its completion tokens'
log-probabilities (the weights are the completion mask). Data come in pairs, chosen then
rejected; the reference holds one row ``(ref_chosen, ref_rejected)`` per pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kitchen.types import CustomLossFn, Datum

if TYPE_CHECKING:  # pragma: no cover
    import torch


def sequence_logprobs(data: Sequence[Datum], logprobs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Each datum's weighted sum of token log-probabilities, [len(data)], keeping gradients."""
    import torch

    sums = [
        (lp * torch.tensor(d.loss_fn_inputs["weights"].data, dtype=lp.dtype)).sum()
        for d, lp in zip(data, logprobs, strict=True)
    ]
    return torch.stack(sums)


def dpo_stats(
    policy: torch.Tensor, reference: torch.Tensor, beta: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss (a scalar with gradients) and the metrics of pairs laid out chosen, rejected."""
    import torch.nn.functional as F

    chosen_ratio = policy[0::2] - reference[:, 0].to(policy.dtype)
    rejected_ratio = policy[1::2] - reference[:, 1].to(policy.dtype)
    chosen_reward = beta * chosen_ratio
    rejected_reward = beta * rejected_ratio
    margin = chosen_reward - rejected_reward
    loss = -F.logsigmoid(margin).mean()
    metrics = {
        "dpo_loss": float(loss.detach()),
        "accuracy": float((chosen_ratio > rejected_ratio).float().mean()),
        "margin": float(margin.detach().mean()),
        "chosen_reward": float(chosen_reward.detach().mean()),
        "rejected_reward": float(rejected_reward.detach().mean()),
    }
    return loss, metrics


def dpo_loss(beta: float, reference: torch.Tensor) -> CustomLossFn:
    """The custom loss of one batch whose pairs' reference rows are ``reference`` [P, 2]."""

    def loss_fn(
        data: Sequence[Datum], logprobs: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        loss, metrics = dpo_stats(sequence_logprobs(data, logprobs), reference, beta)
        metrics["num_pairs"] = float(len(data) // 2)
        metrics["num_tokens"] = float(sum(d.model_input.length for d in data))
        return loss, metrics

    return loss_fn
