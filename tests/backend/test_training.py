"""Local-backend behaviour beyond the port's contract: per-step hyper-parameters, optimizer
resets, bfloat16, and the shipped tiny model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.training_contract import STEP, supervised
from kitchen.types import AdamParams, ModelInput, SamplingParams

MakeClient = Callable[..., Any]
TEXT = "the cat sat on the mat."


def prompt_of(client: Any) -> ModelInput:
    return ModelInput.from_ints(client.get_tokenizer().encode(TEXT, add_special_tokens=False))


def test_learning_rate_is_read_at_every_step(local_client: MakeClient) -> None:
    client = local_client()
    data = [supervised(client, TEXT)]
    client.forward_backward(data)
    client.optim_step(STEP).result()
    before = client.compute_logprobs(prompt_of(client)).result()
    client.forward_backward(data)
    frozen = client.optim_step(AdamParams(learning_rate=0.0)).result()
    assert frozen.metrics["learning_rate"] == 0.0 and frozen.metrics["grad_norm"] > 0
    assert client.compute_logprobs(prompt_of(client)).result() == before
    client.forward_backward(data)
    client.optim_step(STEP).result()
    assert client.compute_logprobs(prompt_of(client)).result() != before
    assert client.step == 3


def test_loading_without_the_optimizer_starts_fresh_moments(
    local_client: MakeClient, tmp_path: Path
) -> None:
    client = local_client()
    data = [supervised(client, TEXT)]
    for _ in range(3):
        client.forward_backward(data)
        client.optim_step(STEP)
    client.save_state(tmp_path / "s").result()
    outcomes = []
    for with_optimizer in (True, False):
        assert client.load_state(tmp_path / "s", with_optimizer).result().step == 3
        client.forward_backward(data)
        client.optim_step(STEP)
        outcomes.append(client.compute_logprobs(prompt_of(client)).result())
    assert outcomes[0] != outcomes[1]


def test_lora_dropout_applies_to_training_only(local_client: MakeClient) -> None:
    client = local_client(lora_dropout=0.5)
    datum = supervised(client, TEXT)
    client.forward_backward([datum])
    client.optim_step(STEP).result()  # the adapter is no longer zero, so dropout shows
    scored = client.compute_logprobs(prompt_of(client)).result()
    trained_on = client.forward_backward([datum]).result().loss_fn_outputs[0]["logprobs"]
    gaps = [abs(a - b) for a, b in zip(trained_on.data, scored[1:], strict=True)]
    assert max(gaps) > 1e-3
    assert client.compute_logprobs(prompt_of(client)).result() == scored


def test_bfloat16_trains_and_samples(local_client: MakeClient) -> None:
    client = local_client(dtype="bfloat16")
    data = [supervised(client, TEXT)]
    losses = []
    for _ in range(3):
        losses.append(client.forward_backward(data).result().metrics["loss:sum"])
        client.optim_step(STEP).result()
    assert losses[-1] < losses[0]
    with client.sampling_client() as sampler:
        response = sampler.sample(prompt_of(client), 2, SamplingParams(max_tokens=4, seed=0))
        assert [len(s.tokens) for s in response.result().sequences] == [4, 4]


def test_the_shipped_tiny_model_loads_by_name() -> None:
    from kitchen.embedded import TINY_MODEL_DIR

    if not (TINY_MODEL_DIR / "config.json").is_file():
        pytest.skip("the shipped tiny model is not built in this checkout")
    from kitchen.adapters.local_torch import create_training_client

    with create_training_client(model_name="kitchen/tiny", lora_rank=4, device="cpu") as client:
        loss = client.forward_backward([supervised(client, TEXT)]).result().metrics["loss:sum"]
        assert loss > 0
