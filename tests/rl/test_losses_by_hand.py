"""The RL losses and their gradients, against the same formulas written by hand in plain
Python floats (tinker's definitions: summed over tokens, never averaged)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from kitchen.adapters.local_torch.losses import importance_sampling, ppo
from kitchen.types import Datum, ModelInput, TensorData

TOL = 1e-6
# learner log-probs p, sampler log-probs q, advantages A: ratios exp(p - q) inside and outside
# PPO's [0.8, 1.2], with positive and negative advantages.
P = [-1.0, -0.5, -2.0, -0.1, -3.0, -1.5]
Q = [-1.0, -0.9, -1.5, -0.4, -2.95, -1.2]
A = [0.5, 1.0, -1.0, -0.25, 2.0, -0.75]


def _is_by_hand() -> tuple[float, list[float]]:
    terms = [math.exp(p - q) * a for p, q, a in zip(P, Q, A, strict=True)]
    return -sum(terms), [-t for t in terms]  # d/dp of -exp(p - q)·A is -exp(p - q)·A


def _ppo_by_hand(low: float = 0.8, high: float = 1.2) -> tuple[float, list[float]]:
    loss, grad = 0.0, []
    for p, q, a in zip(P, Q, A, strict=True):
        r = math.exp(p - q)
        clipped = min(max(r, low), high)
        if r * a <= clipped * a:  # the unclipped objective is the smaller: its gradient flows
            loss -= r * a
            grad.append(-r * a)
        else:  # the clipped one is constant in p outside the bounds
            loss -= clipped * a
            grad.append(0.0)
    return loss, grad


def _kitchen(fn: Any) -> tuple[float, list[float]]:
    p = torch.tensor(P, dtype=torch.float64, requires_grad=True)
    inputs = {
        "logprobs": torch.tensor(Q, dtype=torch.float64),
        "advantages": torch.tensor(A, dtype=torch.float64),
    }
    loss = fn(p, inputs, {})
    loss.backward()
    assert p.grad is not None
    return float(loss.detach()), [float(g) for g in p.grad]


@pytest.mark.parametrize(
    ("fn", "by_hand"), [(importance_sampling, _is_by_hand), (ppo, _ppo_by_hand)], ids=["is", "ppo"]
)
def test_loss_and_gradient_match_the_hand_computation(fn: Any, by_hand: Any) -> None:
    loss, grad = _kitchen(fn)
    want_loss, want_grad = by_hand()
    assert abs(loss - want_loss) <= TOL
    assert all(abs(g - w) <= TOL for g, w in zip(grad, want_grad, strict=True)), (grad, want_grad)


def test_ppo_inputs_exercise_both_sides_of_the_clip() -> None:
    ratios = [math.exp(p - q) for p, q in zip(P, Q, strict=True)]
    assert any(r > 1.2 for r in ratios) and any(r < 0.8 for r in ratios)
    assert any(0.8 <= r <= 1.2 for r in ratios)
    _, grad = _ppo_by_hand()
    assert 0.0 in grad  # some token is clipped out of the gradient


def _datum(prompt: list[int], completion: list[int], q: list[float], adv: float) -> Datum:
    tokens = prompt + completion
    pad = len(prompt) - 1
    return Datum(
        ModelInput.from_ints(tokens[:-1]),
        {
            "target_tokens": TensorData.from_list(tokens[1:], "int64"),
            "logprobs": TensorData.from_list([0.0] * pad + q, "float32"),
            "advantages": TensorData.from_list([0.0] * pad + [adv] * len(completion), "float32"),
        },
    )


@pytest.mark.parametrize("loss_fn", ["importance_sampling", "ppo"])
def test_backend_forward_backward_sums_the_loss_over_completion_tokens(
    local_client: Any, loss_fn: str
) -> None:
    """The local backend's loss:sum is the hand formula over its own returned log-probs."""
    client = local_client(seed=0)
    data = [
        _datum([1, 5, 7], [9, 11, 2], [-2.0, -2.5, -3.0], 0.75),
        _datum([1, 6], [8, 2], [-4.0, -1.0], -0.5),
    ]
    out = client.forward_backward(data, loss_fn).result()
    want = 0.0
    for d, o in zip(data, out.loss_fn_outputs, strict=True):
        for p, q, a in zip(
            o["logprobs"].data,
            d.loss_fn_inputs["logprobs"].data,
            d.loss_fn_inputs["advantages"].data,
            strict=True,
        ):
            r = math.exp(float(p) - float(q))
            if loss_fn == "ppo":
                want -= min(r * a, min(max(r, 0.8), 1.2) * a)
            else:
                want -= r * a
    assert abs(out.metrics["loss:sum"] - want) <= 1e-5 * max(1.0, abs(want))


@pytest.fixture
def local_client(tiny_model_dir: Path) -> Any:
    from kitchen.adapters.local_torch import create_training_client

    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        made.append(
            create_training_client(
                model_name=str(tiny_model_dir), lora_rank=4, device="cpu", **kwargs
            )
        )
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kitchen.testing.tiny_llama import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
