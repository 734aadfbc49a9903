"""Acceptance: same seed, same bytes; a resumed run in a new process ends where an
uninterrupted one does; what the trainer exports loads in plain peft and transformers."""

from __future__ import annotations

import hashlib
import os
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kitchen.types import ModelInput

CHILD = Path(__file__).with_name("resume_child.py")
loop: dict[str, Any] = runpy.run_path(str(CHILD))
MakeClient = Callable[..., Any]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_same_seed_gives_identical_adapters_and_resume_in_a_new_process_matches(
    local_client: MakeClient, tiny_model_dir: Path, tmp_path: Path
) -> None:
    settings = loop["SETTINGS"]
    first = local_client(seed=0, **settings)
    loop["train"](first, 0, 20)
    first.save_weights_for_sampler(tmp_path / "first").result()

    second = local_client(seed=0, **settings)
    loop["train"](second, 0, 10)
    second.save_state(tmp_path / "step10").result()
    loop["train"](second, 10, 20)
    second.save_weights_for_sampler(tmp_path / "second").result()
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()

    args = [str(tiny_model_dir), str(tmp_path / "step10"), "10", "20", str(tmp_path / "resumed")]
    env = {**os.environ, "PYTHONHASHSEED": "7"}
    subprocess.run([sys.executable, str(CHILD), *args], check=True, timeout=300, env=env)
    adapter = "adapter_model.safetensors"
    assert sha256(tmp_path / "resumed" / adapter) == sha256(tmp_path / "first" / adapter)
    config = "adapter_config.json"
    assert (tmp_path / "resumed" / config).read_bytes() == (
        tmp_path / "first" / config
    ).read_bytes()


def trained(local_client: MakeClient) -> Any:
    client = local_client(seed=0)
    loop["train"](client, 0, 3)
    return client


def test_the_sampler_adapter_loads_in_plain_peft_and_generates(
    local_client: MakeClient, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    client = trained(local_client)
    client.save_weights_for_sampler(tmp_path / "adapter").result()
    tokens = client.get_tokenizer().encode("The quick brown", add_special_tokens=False)
    expected = client.compute_logprobs(ModelInput.from_ints(tokens)).result()

    base_name = json_field(tmp_path / "adapter" / "adapter_config.json", "base_model_name_or_path")
    base = AutoModelForCausalLM.from_pretrained(base_name, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()
    ids = torch.tensor([tokens])
    assert logprobs_of(model, ids) == pytest.approx(expected[1:], abs=1e-5)
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=5,
        do_sample=False,
        pad_token_id=0,
    )
    assert out.shape == (1, len(tokens) + 5)


def test_the_merged_export_loads_in_plain_transformers(
    local_client: MakeClient, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    client = trained(local_client)
    client.export_merged(tmp_path / "merged").result()
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "merged"))
    tokens = tokenizer.encode("The quick brown", add_special_tokens=False)
    expected = client.compute_logprobs(ModelInput.from_ints(tokens)).result()
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"), dtype=torch.float32)
    assert logprobs_of(model.eval(), torch.tensor([tokens])) == pytest.approx(
        expected[1:], abs=1e-5
    )


def json_field(path: Path, key: str) -> Any:
    import json

    return json.loads(path.read_text())[key]


def logprobs_of(model: Any, ids: Any) -> list[float]:
    import torch

    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1]
    return torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None]).squeeze(1).tolist()
