"""Rebuild the shipped tokenizer and tiny model: ``python -m kitchen.embedded.build_tiny``.

The model is a 1.8 M-parameter Llama pre-trained on plain task text (never the chat format,
never a held-out problem), so a minute of LoRA fine-tuning visibly teaches it the chat
format and moves its skills there. Every file is written by this module, with fixed seeds,
deterministic kernels, a fixed thread count and no timestamps or library versions inside,
so the same CPU type rebuilds the shipped bytes exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitchen.embedded import TINY_MODEL_DIR
from kitchen.embedded.generate import pretraining_lines
from kitchen.embedded.pretrain import PretrainSettings, pack_rows, pretrain
from kitchen.embedded.tiny_tokenizer import BOS, EOS, PAD, save_tokenizer, train_tokenizer

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from tokenizers import Tokenizer

SHAPE = {
    "hidden_size": 192,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 6,
    "num_key_value_heads": 6,
    "head_dim": 32,
    "max_position_embeddings": 256,
}


def model_config(vocab_size: int, ids: dict[str, int]) -> dict[str, Any]:
    """config.json, in the long-standing Llama keys that transformers 4 and 5 both read."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab_size,
        **SHAPE,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "attention_bias": False,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "tie_word_embeddings": True,
        "use_cache": True,
        **ids,
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_model(model: torch.nn.Module, config: dict[str, Any], out: Path) -> None:
    """Weights (the tied output matrix once), config and generation config."""
    from safetensors.torch import save_file

    state = {
        name: tensor.detach().contiguous()
        for name, tensor in model.state_dict().items()
        if name != "lm_head.weight"  # tied to the input embeddings; loading re-ties it
    }
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out / "config.json", config)
    special = ("bos_token_id", "eos_token_id", "pad_token_id")
    _write_json(out / "generation_config.json", {key: config[key] for key in special})


SPECIAL_IDS = (("bos", BOS), ("eos", EOS), ("pad", PAD))


def _token_id(core: Tokenizer, token: str) -> int:
    found = core.token_to_id(token)
    if found is None:  # pragma: no cover - the trainer always adds the special tokens
        raise RuntimeError(f"the trained tokenizer lacks {token}")
    return int(found)


def build(out: Path, settings: PretrainSettings) -> None:
    """Train the tokenizer, pre-train the model and write both into ``out``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    lines = pretraining_lines()
    core = train_tokenizer(lines)
    out.mkdir(parents=True, exist_ok=True)
    save_tokenizer(core, out)
    ids = {f"{name}_token_id": _token_id(core, token) for name, token in SPECIAL_IDS}
    bos, eos, pad = ids["bos_token_id"], ids["eos_token_id"], ids["pad_token_id"]
    docs = [[bos, *core.encode(line).ids, eos] for line in lines]
    config = model_config(core.get_vocab_size(), ids)
    model = LlamaForCausalLM(LlamaConfig(**config))
    pretrain(model, pack_rows(docs, settings.seq_len, pad), pad, settings)
    save_model(model, config, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kitchen.embedded.build_tiny")
    parser.add_argument("--out", type=Path, default=TINY_MODEL_DIR, help="output folder")
    parser.add_argument(
        "--steps", type=int, default=PretrainSettings().steps, help="pre-training steps"
    )
    args = parser.parse_args(argv)
    build(args.out, PretrainSettings(steps=args.steps))
    print(args.out, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
