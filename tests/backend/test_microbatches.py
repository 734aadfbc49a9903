"""Token-budget micro-batches against one batch, for every loss.

Padded shapes change the last bits, so the promise is a tolerance: per-token log-probs within
rtol 1e-5 / atol 1e-6 of the one-batch results, loss sums within 1e-5 relative, LoRA gradients
with ‖Δg‖/‖g‖ ≤ 1e-5. Gradients are compared after a first optimizer step (LoRA B starts at
zero, so step 0's A-gradient is exactly 0 and would hide a wrong one), and the same input with
the same setting must give the same bytes. The chunked output head (``head``) is switched on
for the tiny vocabulary by lowering its threshold, so it is held to the same tolerances.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from kitchen.adapters.local_torch import head
from kitchen.adapters.local_torch.batch import DEFAULT_MAX_TOKENS_PER_MICROBATCH, plan
from kitchen.types import AdamParams, Datum, ModelInput, TensorData

MakeClient = Callable[..., Any]
LOSSES = ("cross_entropy", "importance_sampling", "ppo", "custom")
LENGTHS = (7, 31, 12, 3, 25, 18, 9, 40, 16, 5, 22, 11)
BUDGET = 64  # padded tokens: LENGTHS need 7 micro-batches


def test_plan_keeps_a_call_that_fits_as_one_batch_in_the_callers_order() -> None:
    assert plan([5, 9, 2], None) == [[0, 1, 2]]
    assert plan([5, 9, 2], 27) == [[0, 1, 2]]
    assert plan([128] * 32, DEFAULT_MAX_TOKENS_PER_MICROBATCH) == [list(range(32))]


def test_plan_groups_by_length_within_the_budget() -> None:
    groups = plan(LENGTHS, BUDGET)
    assert sorted(i for g in groups for i in g) == list(range(len(LENGTHS)))
    for group in groups:
        assert group == sorted(group)
        assert len(group) == 1 or len(group) * max(LENGTHS[i] for i in group) <= BUDGET
    assert groups == plan(list(LENGTHS), BUDGET)  # a function of the lengths alone
    assert plan([100, 3, 3], 10) == [[0], [1, 2]]  # longer than the budget: alone


def _data(seed: int = 0, vocab: int = 100) -> list[Datum]:
    rng = random.Random(seed)
    data = []
    for n in LENGTHS:
        tokens = [rng.randrange(4, vocab) for _ in range(n + 1)]
        inputs = {
            "target_tokens": TensorData.from_list(tokens[1:], "int64"),
            "weights": TensorData.from_list(
                [rng.choice((0.0, 1.0, 0.5)) for _ in range(n)], "float32"
            ),
            "logprobs": TensorData.from_list([-rng.uniform(3.0, 6.0) for _ in range(n)], "float32"),
            "advantages": TensorData.from_list(
                [rng.uniform(-1.0, 1.0) for _ in range(n)], "float32"
            ),
        }
        data.append(Datum(ModelInput.from_ints(tokens[:-1]), inputs))
    return data


def _custom(data: list[Datum], logprobs: list[torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """A loss that couples data, as DPO does: log-sigmoid of pairwise differences of sums."""
    sums = torch.stack([lp.sum() for lp in logprobs])
    margin = sums[0::2] - sums[1::2]
    return -torch.nn.functional.logsigmoid(0.1 * margin).sum(), {
        "margin": float(margin.detach().mean())
    }


def _step(client: Any, data: list[Datum], loss: str) -> Any:
    if loss == "custom":
        return client.forward_backward_custom(data, _custom)
    return client.forward_backward(data, loss)


def _grads(client: Any) -> dict[str, torch.Tensor]:
    """Read on the client's torch thread, after everything queued before."""
    return client._submit(
        lambda: {n: p.grad.detach().clone() for n, p in client._params.items()}
    ).result()


def _ratio(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> float:
    diff = torch.cat([(got[n] - want[n]).flatten() for n in want]).norm()
    return float(diff / torch.cat([g.flatten() for g in want.values()]).norm())


@pytest.fixture
def stepped_state(local_client: MakeClient, tmp_path: Path) -> Path:
    """A state after one optimizer step, so every LoRA gradient is non-zero."""
    client = local_client()
    client.forward_backward(_data(seed=1), "cross_entropy")
    client.optim_step(AdamParams(learning_rate=1e-2)).result()
    client.save_state(tmp_path / "stepped").result()
    return tmp_path / "stepped"


@pytest.fixture(params=[False, True], ids=["model-head", "chunked-head"])
def chunked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    if request.param:
        monkeypatch.setattr(head, "CHUNK_ELEMENTS", 700)  # 7 positions a chunk on 100 tokens
    yield request.param


@pytest.mark.parametrize("loss", LOSSES)
def test_micro_batches_agree_with_one_batch(
    local_client: MakeClient, stepped_state: Path, chunked: bool, loss: str
) -> None:
    data = _data()
    whole = local_client(max_tokens_per_microbatch=None)
    split = local_client(max_tokens_per_microbatch=BUDGET)
    results = {}
    for name, client in (("whole", whole), ("split", split)):
        client.load_state(stepped_state).result()
        out = _step(client, data, loss).result()
        results[name] = (out, _grads(client))
    (want, want_g), (got, got_g) = results["whole"], results["split"]
    for w, g in zip(want.loss_fn_outputs, got.loss_fn_outputs, strict=True):
        assert g["logprobs"].shape == w["logprobs"].shape
        torch.testing.assert_close(
            torch.tensor(g["logprobs"].data),
            torch.tensor(w["logprobs"].data),
            rtol=1e-5,
            atol=1e-6,
        )
    assert math.isclose(got.metrics["loss:sum"], want.metrics["loss:sum"], rel_tol=1e-5)
    assert set(got.metrics) == set(want.metrics)
    assert _ratio(got_g, want_g) <= 1e-5


@pytest.mark.parametrize("loss", LOSSES)
def test_the_same_setting_gives_the_same_bytes(
    local_client: MakeClient, stepped_state: Path, chunked: bool, loss: str
) -> None:
    data = _data()
    runs = []
    for _ in range(2):
        client = local_client(max_tokens_per_microbatch=BUDGET)
        client.load_state(stepped_state).result()
        out = _step(client, data, loss).result()
        grads = _grads(client)
        client.optim_step(AdamParams(learning_rate=1e-2)).result()
        again = client.forward(data, "cross_entropy").result()
        runs.append((out, grads, again))
    (out_a, g_a, again_a), (out_b, g_b, again_b) = runs
    assert out_a.loss_fn_outputs == out_b.loss_fn_outputs
    assert out_a.metrics == out_b.metrics
    assert all(torch.equal(g_a[n], g_b[n]) for n in g_a)
    assert again_a.loss_fn_outputs == again_b.loss_fn_outputs


def test_forward_agrees_with_one_batch(
    local_client: MakeClient, stepped_state: Path, chunked: bool
) -> None:
    data = _data()
    outs = []
    for budget in (None, BUDGET):
        client = local_client(max_tokens_per_microbatch=budget)
        client.load_state(stepped_state).result()
        outs.append(client.forward(data, "ppo").result())
    want, got = outs
    flat_want = [v for o in want.loss_fn_outputs for v in o["logprobs"].data]
    flat_got = [v for o in got.loss_fn_outputs for v in o["logprobs"].data]
    assert flat_got == pytest.approx(flat_want, rel=1e-5, abs=1e-6)
    assert math.isclose(got.metrics["loss:sum"], want.metrics["loss:sum"], rel_tol=1e-5)


def test_compute_logprobs_through_the_chunked_head(
    local_client: MakeClient, stepped_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = local_client()
    client.load_state(stepped_state).result()
    prompt = _data()[7].model_input
    want = client.compute_logprobs(prompt).result()
    monkeypatch.setattr(head, "CHUNK_ELEMENTS", 700)
    got = client.compute_logprobs(prompt).result()
    assert got[0] is None and want[0] is None
    assert got[1:] == pytest.approx(want[1:], rel=1e-5, abs=1e-6)
    sampler = client.sampling_client()
    assert sampler.compute_logprobs(prompt).result()[1:] == pytest.approx(
        want[1:], rel=1e-5, abs=1e-6
    )
    sampler.close()


def test_gradient_checkpointing_gives_the_same_step(
    local_client: MakeClient, stepped_state: Path
) -> None:
    data = _data()
    grads = []
    for checkpointing in (False, True):
        client = local_client(
            gradient_checkpointing=checkpointing, max_tokens_per_microbatch=BUDGET
        )
        client.load_state(stepped_state).result()
        client.forward_backward(data, "cross_entropy").result()
        grads.append(_grads(client))
        base = client._model.get_base_model()
        assert bool(getattr(base, "is_activation_checkpointing", False)) is checkpointing
    assert _ratio(grads[1], grads[0]) <= 1e-5


def test_a_failed_call_leaves_the_accumulated_gradients_as_they_were(
    local_client: MakeClient, stepped_state: Path
) -> None:
    from kitchen.errors import TrainingDiverged

    client = local_client(max_tokens_per_microbatch=BUDGET)
    client.load_state(stepped_state).result()
    data = _data()
    client.forward_backward(data, "cross_entropy").result()
    before = _grads(client)
    poisoned = list(data)
    longest = LENGTHS.index(max(LENGTHS))  # the first micro-batch is fine, a later one is not
    shortest = LENGTHS.index(min(LENGTHS))
    inputs = dict(data[shortest].loss_fn_inputs)
    inputs["weights"] = TensorData.from_list([float("nan")] * LENGTHS[shortest], "float32")
    poisoned[shortest] = Datum(data[shortest].model_input, inputs)
    assert plan(LENGTHS, BUDGET)[0] == [longest]
    with pytest.raises(TrainingDiverged):
        client.forward_backward(poisoned, "cross_entropy").result()
    after = _grads(client)
    assert all(torch.equal(before[n], after[n]) for n in before)
