"""A custom loss done tinker's way (forward, client-side gradient, plain forward_backward)
trains exactly as the backend's own forward_backward_custom does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from kitchen.testing.training_contract import STEP, supervised
from kitchen.workflows.common.custom_loss import forward_backward_custom_tinker_way

TEXTS = ("the cat sat on the mat.", "a quick brown fox jumps!", "kitchen bakes runs", "ok then")


def squared_margin(data: Any, logprobs: Any) -> tuple[torch.Tensor, dict[str, float]]:
    """A loss that is not linear in the log-probabilities, so the gradient weights matter."""
    sums = torch.stack([lp.sum() for lp in logprobs])
    loss = ((sums[0::2] - sums[1::2] - 1.0) ** 2).mean()
    return loss, {"pairs": float(len(data) // 2)}


def _logprobs_after_one_step(
    client: Any, data: Any, submit: Callable[..., Any]
) -> tuple[list[float], Any]:
    out = submit(client, data, squared_margin).result()
    client.optim_step(STEP).result()
    after = client.forward(data).result()
    return [v for o in after.loss_fn_outputs for v in o["logprobs"].data], out


def test_tinker_way_matches_the_native_custom_loss(local_client: Callable[..., Any]) -> None:
    native, tinker = local_client(), local_client()
    data = [supervised(native, t) for t in TEXTS]
    want, native_out = _logprobs_after_one_step(
        native, data, lambda c, d, f: c.forward_backward_custom(d, f)
    )
    got, tinker_out = _logprobs_after_one_step(tinker, data, forward_backward_custom_tinker_way)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert tinker_out.metrics["pairs"] == 2.0
    assert tinker_out.metrics["loss:sum"] == pytest.approx(native_out.metrics["loss:sum"], rel=1e-5)
