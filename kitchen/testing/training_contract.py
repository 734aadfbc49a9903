"""The TrainingClient contract, written once for every training backend.

Subclass ``TrainingClientContract`` in a test module and override the ``make_client``
fixture: it returns a factory ``make(seed=0) -> TrainingClient`` whose clients start from
the same weights for the same seed. Clients with a ``close()`` method are closed after each
test. Data are built from the client's own tokenizer, so any model with a text tokenizer fits.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from kitchen.errors import TrainingDiverged
from kitchen.ports import OnePassCustomLoss, TrainingClient
from kitchen.types import AdamParams, Datum, DType, ModelInput, TensorData

TEXTS = ("the cat sat on the mat.", "a quick brown fox jumps!", "kitchen bakes runs")
STEP = AdamParams(learning_rate=1e-2)
MakeClient = Callable[..., TrainingClient]


def supervised(client: TrainingClient, text: str, weights: Sequence[float] | None = None) -> Datum:
    """Next-token data for ``text``: input tokens[:-1], targets tokens[1:], weights default 1."""
    tokens = client.get_tokenizer().encode(text, add_special_tokens=False)
    n = len(tokens) - 1
    w = [1.0] * n if weights is None else list(weights)
    return Datum(
        ModelInput.from_ints(tokens[:-1]),
        {
            "target_tokens": TensorData.from_list(tokens[1:], "int64"),
            "weights": TensorData.from_list(w, "float32"),
        },
    )


def with_inputs(datum: Datum, **fields: list[float] | list[int]) -> Datum:
    inputs = dict(datum.loss_fn_inputs)
    for key, values in fields.items():
        dtype: DType = "int64" if key == "target_tokens" else "float32"
        inputs[key] = TensorData.from_list(values, dtype)
    return Datum(datum.model_input, inputs)


def logprob_rows(output: Any) -> list[list[float]]:
    return [list(o["logprobs"].data) for o in output.loss_fn_outputs]


def close_to(rows: Sequence[Sequence[float | None]]) -> Any:
    """Equality up to float noise, so that a non-deterministic remote backend passes too."""
    return pytest.approx([v for row in rows for v in row], rel=1e-5, abs=1e-6)


def flat(rows: Sequence[Sequence[float | None]]) -> list[float | None]:
    return [v for row in rows for v in row]


def mean_margin_loss(data: Any, logprobs: Any) -> Any:
    """A mean over pairs (data laid out first, second) that is not linear in the
    log-probabilities, as DPO's is, so the gradient's weights matter."""
    import torch

    sums = torch.stack([lp.sum() for lp in logprobs])
    loss = torch.nn.functional.softplus(sums[1::2] - sums[0::2]).mean()
    return loss, {"pairs": float(len(data) // 2)}


class TrainingClientContract:
    __test__ = False

    @pytest.fixture
    def make_client(self) -> MakeClient:
        raise NotImplementedError("override make_client in the subclass")

    @pytest.fixture
    def clients(self, make_client: MakeClient) -> Iterator[MakeClient]:
        made: list[TrainingClient] = []

        def make(**kwargs: Any) -> TrainingClient:
            made.append(make_client(**kwargs))
            return made[-1]

        yield make
        for client in made:
            close = getattr(client, "close", None)
            if close is not None:
                close()

    def batch(self, client: TrainingClient) -> list[Datum]:
        return [supervised(client, text) for text in TEXTS]

    # ------------------------------------------------------------------ futures and order

    def test_submit_ahead_matches_waiting_for_each_result(self, clients: MakeClient) -> None:
        ahead, waiting = clients(seed=0), clients(seed=0)
        data = self.batch(ahead)
        futures = [
            ahead.forward_backward(data),
            ahead.optim_step(STEP),
            ahead.forward_backward(data),
            ahead.optim_step(STEP),
        ]
        expected = []
        for _ in range(2):
            expected.append(waiting.forward_backward(data).result())
            waiting.optim_step(STEP).result()
        first, second = futures[0].result(), futures[2].result()
        futures[3].result()
        assert flat(logprob_rows(second)) == close_to(logprob_rows(expected[1]))
        assert flat(logprob_rows(second)) != close_to(logprob_rows(first))
        assert ahead.step == 2

    def test_methods_return_before_the_work_is_done(self, clients: MakeClient) -> None:
        client = clients()
        gate = threading.Event()

        def gated_loss(data: Any, logprobs: Any) -> Any:
            assert gate.wait(timeout=30), "the caller was blocked by its own submission"
            return -sum(lp.sum() for lp in logprobs), {}

        held = client.forward_backward_custom(self.batch(client), gated_loss)
        step = client.optim_step(STEP)
        assert not held.done() and not step.done()
        gate.set()
        assert held.result(timeout=60).metrics["loss:sum"] > 0
        assert step.result(timeout=60) is not None
        assert client.step == 1

    # ------------------------------------------------------------------ losses

    def test_loss_decreases_on_a_repeated_batch(self, clients: MakeClient) -> None:
        client = clients()
        data = self.batch(client)
        losses = []
        for _ in range(6):
            losses.append(client.forward_backward(data).result().metrics["loss:sum"])
            client.optim_step(STEP).result()
        assert losses[-1] < losses[0]

    def test_loss_sum_is_weighted_negative_logprob(self, clients: MakeClient) -> None:
        client = clients()
        datum = supervised(client, TEXTS[0])
        n = datum.model_input.length
        weights = [0.5 if i % 2 else 2.0 for i in range(n)]
        out = client.forward_backward([with_inputs(datum, weights=weights)]).result()
        (row,) = logprob_rows(out)
        assert len(row) == n
        assert all(lp <= 0 for lp in row)
        expected = -sum(w * lp for w, lp in zip(weights, row, strict=True))
        assert out.metrics["loss:sum"] == pytest.approx(expected, rel=1e-5)

    def test_zero_weight_positions_contribute_nothing(self, clients: MakeClient) -> None:
        client = clients()
        datum = supervised(client, TEXTS[1])
        n = datum.model_input.length
        weights = [1.0] * 4 + [0.0] * (n - 4)
        targets = list(datum.loss_fn_inputs["target_tokens"].data)
        scrambled = targets[:4] + [targets[0]] * (n - 4)
        a = client.forward_backward([with_inputs(datum, weights=weights)]).result()
        b = client.forward_backward(
            [with_inputs(datum, weights=weights, target_tokens=scrambled)]
        ).result()
        assert a.metrics["loss:sum"] == pytest.approx(b.metrics["loss:sum"], rel=1e-6)
        assert logprob_rows(a)[0][:4] == close_to([logprob_rows(b)[0][:4]])

    def test_data_of_different_lengths_share_one_call(self, clients: MakeClient) -> None:
        client = clients()
        data = self.batch(client)
        together = client.forward_backward(data).result()
        apart = [client.forward_backward([d]).result() for d in data]
        assert [len(r) for r in logprob_rows(together)] == [d.model_input.length for d in data]
        assert together.metrics["loss:sum"] == pytest.approx(
            sum(o.metrics["loss:sum"] for o in apart), rel=1e-5
        )

    def test_importance_sampling_and_ppo_at_known_ratios(self, clients: MakeClient) -> None:
        client = clients()
        datum = supervised(client, TEXTS[2])
        n = datum.model_input.length
        (current,) = logprob_rows(client.forward_backward([datum]).result())
        # q = p / e, so every ratio p/q is e; advantages of 2 on every position.
        rl = with_inputs(datum, logprobs=[lp - 1.0 for lp in current], advantages=[2.0] * n)
        imp = client.forward_backward([rl], "importance_sampling").result()
        assert imp.metrics["loss:sum"] == pytest.approx(-2.0 * math.e * n, rel=1e-5)
        clipped = client.forward_backward([rl], "ppo").result()
        assert clipped.metrics["loss:sum"] == pytest.approx(-2.0 * 1.2 * n, rel=1e-5)
        wide = client.forward_backward(
            [rl], "ppo", {"clip_low_threshold": 0.5, "clip_high_threshold": 3.0}
        ).result()
        assert wide.metrics["loss:sum"] == pytest.approx(-2.0 * math.e * n, rel=1e-5)

    def test_custom_loss_sees_each_datums_logprobs(self, clients: MakeClient) -> None:
        client = clients()
        data = self.batch(client)
        reference = client.forward_backward(data).result()

        def nll(batch: Any, logprobs: Any) -> Any:
            total = -sum(lp.sum() for lp in logprobs)
            return total, {"pairs": float(len(batch))}

        custom = client.forward_backward_custom(data, nll).result()
        assert custom.metrics["pairs"] == 3.0
        assert custom.metrics["loss:sum"] == pytest.approx(reference.metrics["loss:sum"], rel=1e-5)
        assert flat(logprob_rows(custom)) == close_to(logprob_rows(reference))

    def test_one_pass_custom_loss_matches_two_passes(self, clients: MakeClient) -> None:
        """A backend offering ``OnePassCustomLoss`` gives, for a call it takes in one pass,
        tinker's two-pass loss, log-probs and gradient (measured off the zero-initialised
        adapter, after a first optimizer step, through the next step's ``grad_norm`` and the
        log-probs after it)."""
        from kitchen.workflows.common.custom_loss import forward_backward_custom_tinker_way

        one, two = clients(seed=0), clients(seed=0)
        if not isinstance(one, OnePassCustomLoss):
            pytest.skip("this backend takes every custom loss in two passes (tinker's way)")
        data = [*self.batch(one), supervised(one, "one more line")]
        for client in (one, two):
            client.forward_backward(data)
            client.optim_step(STEP).result()
        assert one.custom_loss_in_one_pass(data)
        got = one.forward_backward_custom(data, mean_margin_loss).result()
        want = forward_backward_custom_tinker_way(two, data, mean_margin_loss).result()
        assert got.metrics["pairs"] == want.metrics["pairs"] == 2.0
        assert got.metrics["loss:sum"] == pytest.approx(want.metrics["loss:sum"], rel=1e-5)
        assert flat(logprob_rows(got)) == close_to(logprob_rows(want))
        norms = [c.optim_step(STEP).result().metrics["grad_norm"] for c in (one, two)]
        assert norms[0] == pytest.approx(norms[1], rel=1e-5)
        after = [logprob_rows(c.forward(data).result()) for c in (one, two)]
        assert flat(after[0]) == close_to(after[1])

    def test_forward_matches_forward_backward_and_keeps_no_gradient(
        self, clients: MakeClient
    ) -> None:
        """``forward`` is the same pass without the backward: same logprobs and loss, and a
        following step is exactly what it would have been without the forward."""
        plain, probed = clients(), clients()
        data = self.batch(plain)
        fwd = probed.forward(data).result()
        assert probed.step == 0
        reference = plain.forward_backward(data).result()
        assert fwd.metrics["loss:sum"] == pytest.approx(reference.metrics["loss:sum"], rel=1e-5)
        assert flat(logprob_rows(fwd)) == close_to(logprob_rows(reference))
        probed.forward_backward(data)
        probed.optim_step(STEP)
        plain.optim_step(STEP).result()
        after_plain = plain.forward(data).result()
        after_probed = probed.forward(data).result()
        assert flat(logprob_rows(after_probed)) == close_to(logprob_rows(after_plain))

    # ------------------------------------------------------------------ steps and failures

    def test_step_counts_optimizer_steps_only(self, clients: MakeClient) -> None:
        client = clients()
        data = self.batch(client)
        assert client.step == 0
        client.forward_backward(data).result()
        assert client.step == 0
        for _ in range(3):
            client.forward_backward(data)
            client.optim_step(STEP).result()
        assert client.step == 3

    def test_nan_loss_raises_training_diverged_naming_the_step(self, clients: MakeClient) -> None:
        client = clients()
        datum = supervised(client, TEXTS[0])
        client.forward_backward([datum])
        client.optim_step(STEP).result()
        poisoned = with_inputs(datum, weights=[float("nan")] * datum.model_input.length)
        with pytest.raises(TrainingDiverged, match="step 1"):
            client.forward_backward([poisoned]).result()
        assert client.forward_backward([datum]).result().metrics["loss:sum"] > 0

    # ------------------------------------------------------------------ state

    def test_save_load_round_trip_continues_identically(
        self, clients: MakeClient, tmp_path: Path
    ) -> None:
        client = clients()
        data = self.batch(client)
        for _ in range(2):
            client.forward_backward(data)
            client.optim_step(STEP)
        saved = client.save_state(tmp_path / "a").result()
        assert saved.step == 2
        after_save = logprob_rows(client.forward_backward(data).result())
        client.optim_step(STEP).result()
        assert client.step == 3
        assert client.load_state(tmp_path / "a").result().step == 2
        assert client.step == 2
        assert flat(logprob_rows(client.forward_backward(data).result())) == close_to(after_save)

    def test_saving_the_same_state_twice_writes_the_same_bytes(
        self, clients: MakeClient, tmp_path: Path
    ) -> None:
        client = clients()
        client.forward_backward(self.batch(client))
        client.optim_step(STEP)
        client.save_state(tmp_path / "a")
        client.save_state(tmp_path / "b").result()
        names = sorted(p.name for p in (tmp_path / "a").iterdir())
        assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
        for name in names:
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()

    def test_weights_for_sampler_are_a_peft_adapter_folder(
        self, clients: MakeClient, tmp_path: Path
    ) -> None:
        client = clients()
        client.save_weights_for_sampler(tmp_path / "adapter").result()
        files = {p.name for p in (tmp_path / "adapter").iterdir()}
        assert {"adapter_config.json", "adapter_model.safetensors"} <= files

    def test_compute_logprobs_gives_one_entry_per_prompt_token(self, clients: MakeClient) -> None:
        client = clients()
        tokens = client.get_tokenizer().encode(TEXTS[0], add_special_tokens=False)
        logprobs = client.compute_logprobs(ModelInput.from_ints(tokens)).result()
        assert len(logprobs) == len(tokens)
        assert logprobs[0] is None
        assert all(lp is not None and lp <= 0 for lp in logprobs[1:])

    def test_sampling_client_keeps_its_snapshot(self, clients: MakeClient) -> None:
        client = clients()
        data = self.batch(client)
        prompt = ModelInput.from_ints(
            client.get_tokenizer().encode(TEXTS[0], add_special_tokens=False)
        )
        sampler = client.sampling_client()
        before = sampler.compute_logprobs(prompt).result()
        for _ in range(2):
            client.forward_backward(data)
            client.optim_step(STEP)
        assert client.compute_logprobs(prompt).result()[1:] != close_to([before[1:]])
        assert sampler.compute_logprobs(prompt).result()[1:] == close_to([before[1:]])
