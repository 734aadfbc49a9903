"""A custom loss on any backend, done tinker's way.

``forward`` gives each datum's per-token log-probabilities; the loss is computed here, on the
client, with torch autograd over those values; its gradient with respect to them becomes the
``weights`` of a plain ``cross_entropy`` ``forward_backward`` (whose loss is
``-Σ weight · logprob``, so its gradient is exactly the custom loss's by the chain rule). Only
built-in losses cross the port, so the same code runs on a remote service.

An in-process backend can do better: ``forward_backward_custom`` there runs the loss on
log-probabilities that still carry the graph and back-propagates through the same forward pass
(``OnePassCustomLoss``). ``forward_backward_custom_loss`` takes that one pass wherever the
backend offers it for the call (one micro-batch, one process) and tinker's two passes
otherwise; the loss function is the same in both and always sees the whole call's data, so a
loss that is a mean (DPO's, over pairs) is the same mean either way.

The two passes must see the same weights: nothing may be submitted between them, which is why
the forward is awaited here and the backward submitted at once after it. The returned future
is the backward's, so the caller can still submit the optimizer step and log the previous step
while the backward runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kitchen.ports import OnePassCustomLoss, TrainingClient
from kitchen.types import CustomLossFn, Datum, ForwardBackwardOutput, Future, TensorData

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class _WithMetrics:
    """The backward's future, answering with the custom loss's value and metrics."""

    backward: Future[ForwardBackwardOutput]
    metrics: dict[str, float]

    def result(self, timeout: float | None = None) -> ForwardBackwardOutput:
        out = self.backward.result(timeout)
        return ForwardBackwardOutput(out.loss_fn_outputs, dict(self.metrics))

    def done(self) -> bool:
        return self.backward.done()


def forward_backward_custom_loss(
    training: TrainingClient,
    data: Sequence[Datum],
    loss_fn: CustomLossFn,
    *,
    one_pass: bool = True,
) -> Future[ForwardBackwardOutput]:
    """``loss_fn``'s gradient for ``data``: in one pass where the backend offers it for this
    call (and ``one_pass``), returning at once; otherwise tinker's two passes
    (``forward_backward_custom_tinker_way``). ``loss:sum`` in the result is the loss's value."""
    if (
        one_pass
        and isinstance(training, OnePassCustomLoss)
        and training.custom_loss_in_one_pass(data)
    ):
        return training.forward_backward_custom(data, loss_fn)
    return forward_backward_custom_tinker_way(training, data, loss_fn)


def forward_backward_custom_tinker_way(
    training: TrainingClient, data: Sequence[Datum], loss_fn: CustomLossFn
) -> Future[ForwardBackwardOutput]:
    """Submit ``loss_fn``'s gradient through ``forward`` and a plain ``forward_backward``.

    Waits for the forward pass (and whatever was queued before it); returns at once after
    submitting the backward. ``loss:sum`` in the result is the custom loss's value.
    """
    import torch

    forward = training.forward(data, "cross_entropy").result()
    logprobs = [
        torch.tensor(out["logprobs"].data, dtype=torch.float32, requires_grad=True)
        for out in forward.loss_fn_outputs
    ]
    loss, metrics = loss_fn(data, logprobs)
    grads = torch.autograd.grad(loss, logprobs, allow_unused=True)
    linear = [
        _with_weights(d, torch.zeros_like(lp) if g is None else -g)
        for d, lp, g in zip(data, logprobs, grads, strict=True)
    ]
    backward = training.forward_backward(linear, "cross_entropy")
    return _WithMetrics(backward, {"loss:sum": float(loss.detach()), **metrics})


def _with_weights(datum: Datum, weights: torch.Tensor) -> Datum:
    inputs = {
        "target_tokens": datum.loss_fn_inputs["target_tokens"],
        "weights": TensorData.from_torch(weights.detach().float()),
    }
    return Datum(datum.model_input, inputs)
