"""Small random models of every family the local backend is tested on, as a new user has them.

Each folder is a real ``save_pretrained`` output (config, safetensors) plus the embedded
tokenizer (262 tokens), so it goes through the same ``from_pretrained`` path as a downloaded
model. Sizes follow the real models' shapes at toy scale (hidden 64, 2 layers, grouped-query
attention, a separate head dimension where the family has one, 4 experts for Qwen3-MoE);
``hidden`` and ``layers`` grow them for benches. Random weights from a fixed seed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
VOCAB = 262  # the embedded tokenizer's


def _common(hidden: int, layers: int, vocab: int) -> dict[str, Any]:
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }


def _llama(hidden: int, layers: int, vocab: int) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(**_common(hidden, layers, vocab), tie_word_embeddings=False)


def _mistral(hidden: int, layers: int, vocab: int) -> Any:
    from transformers import MistralConfig

    return MistralConfig(**_common(hidden, layers, vocab), sliding_window=64)


def _qwen2(hidden: int, layers: int, vocab: int) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(**_common(hidden, layers, vocab), tie_word_embeddings=True)


def _qwen3(hidden: int, layers: int, vocab: int) -> Any:
    from transformers import Qwen3Config

    return Qwen3Config(
        **_common(hidden, layers, vocab), head_dim=hidden // 2, tie_word_embeddings=True
    )


def _qwen3_moe(hidden: int, layers: int, vocab: int) -> Any:
    from transformers import Qwen3MoeConfig

    return Qwen3MoeConfig(
        **_common(hidden, layers, vocab),
        moe_intermediate_size=hidden // 2,
        num_experts=4,
        num_experts_per_tok=2,
        tie_word_embeddings=False,
    )


def _gemma3(hidden: int, layers: int, vocab: int) -> Any:
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        **_common(hidden, layers, vocab),
        head_dim=hidden // 4,
        sliding_window=32,
        final_logit_softcapping=30.0,
    )


def _phi3(hidden: int, layers: int, vocab: int) -> Any:
    from transformers import Phi3Config

    return Phi3Config(**_common(hidden, layers, vocab), tie_word_embeddings=False)


FAMILIES: dict[str, Callable[[int, int, int], Any]] = {
    "llama": _llama,
    "mistral": _mistral,
    "qwen2": _qwen2,
    "qwen3": _qwen3,
    "qwen3_moe": _qwen3_moe,
    "gemma3_text": _gemma3,
    "phi3": _phi3,
}
"""model_type → config builder (hidden, layers, vocab)."""


def write_family(
    family: str, folder: Path, *, hidden: int = 64, layers: int = 2, seed: int = 0
) -> Path:
    """Write a random ``family`` model and the embedded tokenizer into ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM

    from kitchen.embedded import TINY_MODEL_DIR

    config = FAMILIES[family](hidden, layers, VOCAB)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(folder))
    for name in TOKENIZER_FILES:
        shutil.copyfile(TINY_MODEL_DIR / name, folder / name)
    return folder
