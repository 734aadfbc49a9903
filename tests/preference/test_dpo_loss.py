"""The DPO loss and its gradient with respect to each datum's per-token log-probabilities,
against the formula written out by hand in plain torch (an independent computation)."""

from __future__ import annotations

import math

import torch

from kitchen.types import Datum, ModelInput, TensorData
from kitchen.workflows.preference.loss import dpo_loss

BETA = 0.1
# Three pairs (chosen, rejected), each datum's per-token log-probabilities and weights; the
# weights mark the completion (0 on the prompt), as the workflow renders them.
LOGPROBS = [
    [-2.0, -1.5, -0.25, -0.75],
    [-2.0, -1.5, -1.25, -0.5],
    [-3.0, -0.5, -0.125],
    [-3.0, -0.5, -2.5],
    [-1.0, -4.0, -0.5, -0.5, -1.5],
    [-1.0, -4.0, -0.25, -0.25],
]
WEIGHTS = [
    [0.0, 0.0, 1.0, 1.0],
    [0.0, 0.0, 1.0, 1.0],
    [0.0, 1.0, 1.0],
    [0.0, 1.0, 1.0],
    [0.0, 0.0, 1.0, 1.0, 1.0],
    [0.0, 0.0, 1.0, 1.0],
]
REFERENCE = [(-1.5, -1.5), (-1.0, -2.0), (-2.0, -0.75)]  # (ref chosen, ref rejected) per pair


def _data() -> list[Datum]:
    return [
        Datum(
            ModelInput.from_ints(list(range(len(w)))),
            {
                "target_tokens": TensorData.from_list(list(range(1, len(w) + 1)), "int64"),
                "weights": TensorData.from_list(w, "float32"),
            },
        )
        for w in WEIGHTS
    ]


def _by_hand(logprobs: list[torch.Tensor]) -> torch.Tensor:
    """mean over pairs of -log σ(β((lp_c − ref_c) − (lp_r − ref_r))), lp = Σ weight · logprob."""
    total = torch.zeros((), dtype=torch.float64)
    for i, (ref_c, ref_r) in enumerate(REFERENCE):
        lp_c = (logprobs[2 * i] * torch.tensor(WEIGHTS[2 * i], dtype=torch.float64)).sum()
        lp_r = (logprobs[2 * i + 1] * torch.tensor(WEIGHTS[2 * i + 1], dtype=torch.float64)).sum()
        z = BETA * ((lp_c - ref_c) - (lp_r - ref_r))
        total = total - torch.log(1.0 / (1.0 + torch.exp(-z)))
    return total / len(REFERENCE)


def test_loss_and_gradient_match_the_formula() -> None:
    ours_in = [torch.tensor(lp, dtype=torch.float32, requires_grad=True) for lp in LOGPROBS]
    hand_in = [torch.tensor(lp, dtype=torch.float64, requires_grad=True) for lp in LOGPROBS]
    loss, metrics = dpo_loss(BETA, torch.tensor(REFERENCE, dtype=torch.float32))(_data(), ours_in)
    expected = _by_hand(hand_in)
    assert abs(float(loss.detach()) - float(expected.detach())) <= 1e-6
    ours = torch.autograd.grad(loss, ours_in)
    hand = torch.autograd.grad(expected, hand_in)
    for got, want in zip(ours, hand, strict=True):
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-7)
    # gradients sit on the completion only, and push chosen up and rejected down
    assert float(ours[0][0]) == 0.0 and float(ours[0][2]) < 0.0 < float(ours[1][2])
    assert metrics["num_pairs"] == 3.0
    assert metrics["num_tokens"] == 4 + 4 + 3 + 3 + 5 + 4


def test_metrics_by_hand() -> None:
    # pair log-ratios: chosen −1.0 − (−1.5) = 0.5, rejected −1.75 − (−1.5) = −0.25 → margin 0.075
    # pair 2: chosen −0.625 − (−1.0) = 0.375, rejected −3.0 − (−2.0) = −1.0 → margin 0.1375
    # pair 3: chosen −2.5 − (−2.0) = −0.5, rejected −0.5 − (−0.75) = 0.25 → margin −0.075
    logprobs = [torch.tensor(lp) for lp in LOGPROBS]
    _, m = dpo_loss(BETA, torch.tensor(REFERENCE))(_data(), logprobs)
    assert math.isclose(m["accuracy"], 2 / 3, rel_tol=1e-6)
    assert math.isclose(m["margin"], (0.075 + 0.1375 - 0.075) / 3, rel_tol=1e-5)
    assert math.isclose(m["chosen_reward"], 0.1 * (0.5 + 0.375 - 0.5) / 3, rel_tol=1e-5)
    assert math.isclose(m["rejected_reward"], 0.1 * (-0.25 - 1.0 + 0.25) / 3, rel_tol=1e-5)


def test_no_preference_yet_costs_log_2() -> None:
    """At the start the policy is the reference: every margin is 0 and the loss is log 2."""
    refs = [(-0.75 - 0.25, -0.5 - 1.25), (-0.5 - 0.125, -0.5 - 2.5), (-0.5 - 0.5 - 1.5, -0.5)]
    logprobs = [torch.tensor(lp) for lp in LOGPROBS]
    loss, m = dpo_loss(BETA, torch.tensor(refs))(_data(), logprobs)
    assert math.isclose(float(loss.detach()), math.log(2), rel_tol=1e-6)
    assert m["accuracy"] == 0.0 and m["margin"] == 0.0
