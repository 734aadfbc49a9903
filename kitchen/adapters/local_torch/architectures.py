"""Which model families the local backend trains, and a pre-flight check that refuses the rest.

The backend trains decoder-only causal LMs through ``AutoModelForCausalLM`` and peft's LoRA.
These families are in its test matrix (tests/backend/test_architectures.py, built from small
random configs): a supervised, a DPO and an RL step, sampling with the KV cache, save/load
byte-identical, and the exported adapter giving the same logits in plain transformers + peft:

    llama, mistral, qwen2, qwen3, qwen3_moe, gemma3_text, phi3

Other decoder-only families that transformers loads as causal LMs usually work the same way
(same code path), but keep the model's own full logits (no chunked head, see ``head``).

The check reads ``config.json`` only (no weights), so a family that cannot work is refused in
one line before a run exists: a model type this transformers does not know (it needs a newer
one), an encoder-decoder, or a model with no causal-LM head.
"""

from __future__ import annotations

import json
from pathlib import Path

from kitchen.errors import ConfigError

TESTED = ("llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "gemma3_text", "phi3")

ENCODERS = frozenset(
    {
        "bert",
        "big_bird",
        "camembert",
        "data2vec-text",
        "electra",
        "ernie",
        "megatron-bert",
        "rembert",
        "roberta",
        "roberta-prelayernorm",
        "xlm-roberta",
        "xlm-roberta-xl",
        "xmod",
    }
)
"""Encoders that transformers can load as a causal LM only by turning them into decoders:
not what a user means by fine-tuning them, and their LM heads are not causal by default."""


def check_model_name(name: str) -> None:
    """A local model folder must hold a model of a family this backend trains (ConfigError,
    one line); a hub id is checked when the session loads it."""
    from kitchen.embedded import resolve_model

    path = Path(resolve_model(name)).expanduser()
    looks_local = path.exists() or name.startswith(("/", ".", "~")) or name.startswith("kitchen/")
    if not looks_local:
        return
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"model_name {name!r}: {str(path)!r} holds no model (no config.json); "
            "pass a folder written by save_pretrained, or a hub model id"
        )
    check_model_folder(path)


def check_model_folder(folder: str | Path) -> None:
    """Raise ConfigError (one line) when the model in ``folder`` cannot train here."""
    path = Path(folder)
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}/config.json cannot be read ({exc}): save the model again"
        ) from exc
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str):
        raise ConfigError(f"{path}/config.json names no model_type: save it with save_pretrained")
    refusal = refusal_for(model_type, bool(config.get("is_encoder_decoder")))
    if refusal:
        raise ConfigError(f"model {str(path)!r}: {refusal}")


def refusal_for(model_type: str, encoder_decoder: bool = False) -> str | None:
    """Why ``model_type`` cannot train on the local backend, or None when it can."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    tested = ", ".join(TESTED)
    if model_type not in CONFIG_MAPPING_NAMES:
        return (
            f"model type {model_type!r} is unknown to transformers {transformers.__version__}: "
            "upgrade transformers (pip install -U transformers)"
        )
    if encoder_decoder or model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return (
            f"model type {model_type!r} is not a decoder-only causal LM: the local backend "
            f"trains those (tested: {tested})"
        )
    if model_type in ENCODERS:
        return (
            f"model type {model_type!r} is an encoder, not a causal LM: the local backend "
            f"trains decoder-only models (tested: {tested})"
        )
    return None
