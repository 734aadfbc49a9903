"""The embedded default: a tiny pre-trained model, its tokenizer and small task datasets.

They ship inside the package so that ``kitchen run sl_basic`` works on a machine with no
network. This module stays light (no torch, no transformers): the engine resolves model
names through it before deciding whether anything heavy is needed at all.
"""

from __future__ import annotations

from pathlib import Path

EMBEDDED_MODEL = "kitchen/tiny"
"""The name recipes use for the shipped model; it resolves to a folder inside the package."""

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
TINY_MODEL_DIR = ASSETS_DIR / "tiny"


def resolve_model(name: str) -> str:
    """Map ``kitchen/tiny`` to the shipped folder and leave any other name unchanged.

    A hub id or a local path passes through untouched, so the embedded model and a real
    one take the same loading code path.
    """
    if name == EMBEDDED_MODEL:
        return str(TINY_MODEL_DIR)
    return name


__all__ = ["ASSETS_DIR", "EMBEDDED_MODEL", "TINY_MODEL_DIR", "resolve_model"]
