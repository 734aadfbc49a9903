"""The pre-flight checks the training workflows share, run by launch before the run exists."""

from __future__ import annotations

from typing import Any

from kitchen.errors import ConfigError
from kitchen.stage_api import Preflight

PARENT = {"parent": ("load_checkpoint_path",)}
"""The lineage role every training workflow declares: the weights a run starts from."""


def check_training(pre: Preflight[Any]) -> None:
    """The renderer is one kitchen knows (the model is checked by the training adapter)."""
    from kitchen.renderers import RENDERERS

    name = getattr(pre.config, "renderer_name", None)
    if name is not None and name not in RENDERERS:
        raise ConfigError(f"unknown renderer_name {name!r}; known: {', '.join(sorted(RENDERERS))}")
