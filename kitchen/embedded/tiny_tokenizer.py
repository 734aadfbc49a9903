"""The tiny model's tokenizer: byte-level, one token per character, plus chat specials.

A byte alphabet with no merges keeps every digit and letter its own token, which is what
makes addition, reversal and sorting learnable by a model this small; any UTF-8 text
(a user's own data) still encodes without unknown tokens. Role markers are single special
tokens so the chat template costs two tokens per message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Tokenizer

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (PAD, BOS, EOS, *ROLE_TOKENS)
MODEL_MAX_LENGTH = 256

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + eos_token }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
"""``<s><|user|>question</s><|assistant|>answer</s>``: the end of a turn is the eos token,
so generation stops on it with no stop strings."""


def train_tokenizer(texts: Iterable[str]) -> Tokenizer:
    """Train on ``texts`` with a vocabulary of exactly the bytes and the special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=len(SPECIAL_TOKENS) + len(alphabet),  # room for no merges at all
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    return core


def tokenizer_config() -> dict[str, Any]:
    """What ``AutoTokenizer`` reads beside tokenizer.json.

    Written by hand rather than by ``save_pretrained`` so that the files do not depend on
    the transformers version that built them: ``PreTrainedTokenizerFast`` is a class name
    transformers 4 and 5 both know, and the chat template sits inside the JSON (the only
    file types the package ships are JSON, JSONL and safetensors).
    """
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "additional_special_tokens": list(ROLE_TOKENS),
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MODEL_MAX_LENGTH,
    }


def special_tokens_map() -> dict[str, Any]:
    return {
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "additional_special_tokens": list(ROLE_TOKENS),
    }


def save_tokenizer(core: Tokenizer, folder: Path) -> None:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json, stably."""
    (folder / "tokenizer.json").write_text(core.to_str(pretty=True) + "\n", encoding="utf-8")
    for name, data in (
        ("tokenizer_config.json", tokenizer_config()),
        ("special_tokens_map.json", special_tokens_map()),
    ):
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        (folder / name).write_text(text, encoding="utf-8")
