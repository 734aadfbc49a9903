"""Every common architecture through the local backend, as a new user has it: a small random
Llama, Mistral, Qwen2, Qwen3, Qwen3-MoE, Gemma 3 (text) and Phi-3 folder, saved with the
embedded tokenizer. Each takes a supervised, a DPO and an RL step, samples with the KV cache,
saves and reloads its state byte for byte, and exports an adapter that plain transformers +
peft load to the same log-probs (through the model's own head and through the chunked one)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from kitchen.adapters.local_torch import create_training_client, head
from kitchen.adapters.local_torch.architectures import TESTED, check_model_folder
from kitchen.errors import ConfigError
from kitchen.testing.families import FAMILIES, write_family
from kitchen.types import AdamParams, Datum, ModelInput, SamplingParams, TensorData
from kitchen.workflows.preference.loss import dpo_loss

STEP = AdamParams(learning_rate=1e-2)
TEXTS = ("<|user|>2+3<|assistant|>5", "<|user|>7+1<|assistant|>8", "<|user|>4+4<|assistant|>8")
PAIRS = (("<|user|>1+1<|assistant|>2", "<|user|>1+1<|assistant|>3"),) * 2


def _datum(tokens: list[int], weights: list[float] | None = None, **extra: list[float]) -> Datum:
    n = len(tokens) - 1
    inputs = {
        "target_tokens": TensorData.from_list(tokens[1:], "int64"),
        "weights": TensorData.from_list(weights or [1.0] * n, "float32"),
        **{k: TensorData.from_list(v, "float32") for k, v in extra.items()},
    }
    return Datum(ModelInput.from_ints(tokens[:-1]), inputs)


def _encode(client: Any, text: str) -> list[int]:
    return list(client.get_tokenizer().encode(text, add_special_tokens=False))


def test_the_matrix_is_the_documented_list() -> None:
    assert sorted(FAMILIES) == sorted(TESTED)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    made: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in made:
            made[family] = write_family(family, tmp_path_factory.mktemp(family))
        return made[family]

    return get


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_family_trains_samples_saves_and_exports(
    family: str, folders: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = folders(family)
    check_model_folder(folder)
    settings = {"model_name": str(folder), "lora_rank": 4, "device": "cpu", "seed": 0}
    client = create_training_client(**settings, max_tokens_per_microbatch=32)
    try:
        _supervised(client)
        _dpo(client)
        _rl(client)
        _save_and_load(client, settings, tmp_path)
        _export(client, folder, tmp_path, monkeypatch)
    finally:
        client.close()


def _supervised(client: Any) -> None:
    data = [_datum(_encode(client, t)) for t in TEXTS]
    losses = []
    for _ in range(3):
        losses.append(client.forward_backward(data, "cross_entropy").result().metrics["loss:sum"])
        assert client.optim_step(STEP).result().metrics["grad_norm"] > 0
    assert max(losses[1:]) < losses[0]


def _dpo(client: Any) -> None:
    data = []
    for chosen, rejected in PAIRS:
        for text in (chosen, rejected):
            tokens = _encode(client, text)
            answer = len(_encode(client, text.split("<|assistant|>")[0] + "<|assistant|>"))
            data.append(_datum(tokens, [0.0] * (answer - 1) + [1.0] * (len(tokens) - answer)))
    rows = client.forward(data, "cross_entropy").result().loss_fn_outputs
    sums = [
        sum(
            w * lp
            for w, lp in zip(d.loss_fn_inputs["weights"].data, r["logprobs"].data, strict=True)
        )
        for d, r in zip(data, rows, strict=True)
    ]
    reference = torch.tensor(sums, dtype=torch.float32).view(-1, 2)
    out = client.forward_backward_custom(data, dpo_loss(0.1, reference)).result()  # two passes
    assert out.metrics["loss:sum"] == pytest.approx(math.log(2), abs=1e-5)  # policy == reference
    assert client.optim_step(STEP).result().metrics["grad_norm"] > 0


def _rl(client: Any) -> None:
    prompt = _encode(client, "<|user|>3+4<|assistant|>")
    sampler = client.sampling_client()
    try:
        params = SamplingParams(max_tokens=6, temperature=1.0, seed=0)
        sequences = sampler.sample(ModelInput.from_ints(prompt), 4, params).result().sequences
    finally:
        sampler.close()
    data = []
    for i, seq in enumerate(sequences):
        assert len(seq.tokens) == 6
        tokens = prompt + list(seq.tokens)
        pad = [0.0] * (len(prompt) - 1)
        advantage = [1.0 if i % 2 else -1.0] * len(seq.tokens)
        data.append(
            _datum(tokens, None, logprobs=pad + list(seq.logprobs), advantages=pad + advantage)
        )
    trained = client.forward(data, "importance_sampling").result().loss_fn_outputs
    for seq, row in zip(sequences, trained, strict=True):
        # the KV-cache decode scored each sampled token as the full forward does
        got = row["logprobs"].data[len(prompt) - 1 :]
        assert list(got) == pytest.approx(list(seq.logprobs), abs=2e-4, rel=1e-4)
    client.forward_backward(data, "importance_sampling").result()
    assert client.optim_step(STEP).result().metrics["grad_norm"] > 0


def _save_and_load(client: Any, settings: dict[str, Any], tmp_path: Path) -> None:
    client.save_state(tmp_path / "a").result()
    other = create_training_client(**settings)
    try:
        assert other.load_state(tmp_path / "a").result().step == client.step
        other.save_state(tmp_path / "b").result()
    finally:
        other.close()
    for name in sorted(p.name for p in (tmp_path / "a").iterdir()):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def _export(client: Any, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    client.save_weights_for_sampler(tmp_path / "adapter").result()
    base = AutoModelForCausalLM.from_pretrained(str(folder))
    with warnings.catch_warnings():
        # peft's own note on a fused-expert MoE (see loading.load_lora_model)
        warnings.filterwarnings("ignore", message="The following (rank|alpha)_pattern keys")
        plain = PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()
    tokens = _encode(client, TEXTS[0] + TEXTS[1])
    with torch.no_grad():
        logits = plain(input_ids=torch.tensor([tokens])).logits[0, :-1].float()
    want = torch.log_softmax(logits, -1).gather(-1, torch.tensor(tokens[1:])[:, None])[:, 0]
    datum = [_datum(tokens)]
    own = client.forward(datum, "cross_entropy").result().loss_fn_outputs[0]["logprobs"].data
    monkeypatch.setattr(head, "CHUNK_ELEMENTS", 2048)  # force the chunked head: 7 positions
    chunked = client.forward(datum, "cross_entropy").result().loss_fn_outputs[0]["logprobs"].data
    torch.testing.assert_close(torch.tensor(own), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.tensor(chunked), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"model_type": "t5", "is_encoder_decoder": True}, "not a decoder-only causal LM"),
        ({"model_type": "bert"}, "is an encoder, not a causal LM"),
        ({"model_type": "llama9000"}, "unknown to transformers"),
        ({}, "names no model_type"),
    ],
)
def test_a_family_that_cannot_work_is_refused_in_one_line(
    tmp_path: Path, config: dict[str, Any], says: str
) -> None:
    import json

    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=says) as caught:
        check_model_folder(tmp_path)
    assert "\n" not in str(caught.value)
