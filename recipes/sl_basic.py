"""sl_basic: supervised LoRA fine-tuning of a chat model, on the embedded default out of the box.

With no arguments it fine-tunes the embedded tiny model (``kitchen/tiny``) on the embedded
arithmetic chat set (``kitchen/arith-chat``) on CPU in about a minute, evaluating held-out NLL
and exact-match accuracy before and after. Every key can be set as ``key=value`` on the command
line or in a YAML/TOML file; names follow tinker-cookbook's where they exist.
"""

from __future__ import annotations

from kitchen.spec import Recipe
from kitchen.workflows.common.config import RENAMED
from kitchen.workflows.supervised.config import SupervisedConfig


class Config(SupervisedConfig):
    """sl_basic's defaults are the shared training defaults: kitchen/tiny, kitchen/arith-chat,
    LoRA rank 16, learning rate 3e-3 with linear decay, 60 steps of 32 conversations."""


RECIPE = Recipe(
    name="sl_basic",
    workflow="supervised",
    config=Config,
    description=(
        "Supervised LoRA fine-tuning on chat data (default: embedded tiny model + arithmetic chat)"
    ),
    adapters={"training": "local_torch", "datasets": "hf_datasets", "blobs": "local"},
    renamed=RENAMED,
)
__all__ = ["RECIPE", "Config"]
