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


def _gradient(client: Any) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in client._params.values() if p.grad is not None])


def _dpo_like(client: Any) -> tuple[list[Any], Callable[..., Any]]:
    """Two pairs (chosen, rejected) and DPO's loss on them, with a made-up reference."""
    from kitchen.workflows.preference.loss import dpo_loss

    data = [supervised(client, t) for t in TEXTS]
    return data, dpo_loss(0.3, torch.tensor([[-30.0, -28.0], [-20.0, -25.0]]))


@pytest.mark.parametrize("budget", [None, 8])
def test_one_pass_and_two_passes_give_the_same_dpo_gradient(
    local_client: Callable[..., Any], budget: int | None
) -> None:
    """Off the zero-initialised adapter (one optimizer step first), DPO's loss in one pass
    and tinker's two passes agree on the loss, the per-token log-probs and the LoRA
    gradient; a call beyond one micro-batch (budget 8 tokens) is not offered one pass and
    takes two, with the same result."""
    from kitchen.workflows.common.custom_loss import forward_backward_custom_loss

    one = local_client(max_tokens_per_microbatch=budget)
    two = local_client(max_tokens_per_microbatch=budget)
    data, loss = _dpo_like(one)
    for client in (one, two):
        client.forward_backward(data)
        client.optim_step(STEP).result()
    assert one.custom_loss_in_one_pass(data) is (budget is None)
    got = forward_backward_custom_loss(one, data, loss).result()
    want = forward_backward_custom_tinker_way(two, data, loss).result()
    assert got.metrics["num_pairs"] == want.metrics["num_pairs"] == 2.0
    assert got.metrics["loss:sum"] == pytest.approx(want.metrics["loss:sum"], rel=1e-5)
    assert got.metrics["dpo_loss"] == pytest.approx(got.metrics["loss:sum"], rel=1e-6)
    rows = [[v for o in out.loss_fn_outputs for v in o["logprobs"].data] for out in (got, want)]
    assert rows[0] == pytest.approx(rows[1], rel=1e-5, abs=1e-6)
    g_one, g_two = _gradient(one), _gradient(two)
    assert float(g_two.norm()) > 0
    assert float((g_one - g_two).norm() / g_two.norm()) <= 1e-5


def test_one_pass_can_be_declined(local_client: Callable[..., Any]) -> None:
    """``one_pass=False`` takes tinker's two passes on a backend that offers one, for the same
    loss as the one pass gives."""
    from kitchen.workflows.common.custom_loss import forward_backward_custom_loss

    declined, offered = local_client(), local_client()
    data, loss = _dpo_like(declined)
    two = forward_backward_custom_loss(declined, data, loss, one_pass=False)
    one = forward_backward_custom_loss(offered, data, loss)
    assert type(two).__name__ == "_WithMetrics" and type(one).__name__ != "_WithMetrics"
    assert two.result().metrics["loss:sum"] == pytest.approx(
        one.result().metrics["loss:sum"], rel=1e-5
    )
