"""The shipped tiny model: loads offline with plain transformers, is small, was pre-trained."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kitchen.embedded import EMBEDDED_MODEL, TINY_MODEL_DIR, resolve_model

SHIPPED = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
}


@pytest.fixture(scope="module")
def loaded() -> tuple[Any, Any]:
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(TINY_MODEL_DIR))
        model = AutoModelForCausalLM.from_pretrained(str(TINY_MODEL_DIR))
    finally:
        mp.undo()
    return tokenizer, model


def test_resolve_model() -> None:
    assert EMBEDDED_MODEL == "kitchen/tiny"
    assert Path(resolve_model("kitchen/tiny")) == TINY_MODEL_DIR
    assert resolve_model("Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B"
    assert resolve_model("/models/mine") == "/models/mine"


def test_shipped_files_and_size() -> None:
    files = {p.name: p.stat().st_size for p in TINY_MODEL_DIR.iterdir()}
    assert set(files) == SHIPPED
    assert sum(files.values()) <= 10 * 1024 * 1024


def test_metadata_holds_no_timestamps_or_versions() -> None:
    from safetensors import safe_open

    with safe_open(str(TINY_MODEL_DIR / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "pt"}
    config = json.loads((TINY_MODEL_DIR / "config.json").read_text())
    assert "transformers_version" not in config
    generation = json.loads((TINY_MODEL_DIR / "generation_config.json").read_text())
    assert generation == {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}


def test_loads_offline_with_plain_transformers(loaded: tuple[Any, Any]) -> None:
    tokenizer, model = loaded
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 1_000_000 <= sum(p.numel() for p in model.parameters()) <= 2_500_000
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (1, 2, 0)
    assert len(tokenizer) == model.config.vocab_size == 262


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("How many letters in frnehvhlv?", "9"),  # held out of pre-training
        ("Largest digit of 353720?", "7"),  # held out of pre-training
        ("Sort 4213.", "1234"),
    ],
)
def test_pretrained_on_plain_task_text(loaded: tuple[Any, Any], question: str, answer: str) -> None:
    import torch

    tokenizer, model = loaded
    prompt = [1, *tokenizer.encode(f"Q: {question}\nA: ", add_special_tokens=False)]
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False)
    assert tokenizer.decode(out[0, len(prompt) :]) == answer + "</s>"


def test_light_modules_do_not_import_torch() -> None:
    code = (
        "import sys, kitchen.embedded, kitchen.embedded.datasets, kitchen.renderers;"
        "heavy = {'torch', 'transformers', 'tokenizers', 'peft', 'datasets'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
