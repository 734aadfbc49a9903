"""A workflow's stage code by name, imported only when a run starts (the stage modules import
the training stack; the workflow module itself stays light)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def stage_loader(
    stages: Mapping[str, str], package: str = "kitchen.workflows"
) -> Callable[[], dict[str, Any]]:
    """``stages``: stage name → module under ``package`` (a full module name when ``package``
    is empty) whose ``run`` is the stage."""
    prefix = f"{package}." if package else ""

    def load() -> dict[str, Any]:
        return {
            name: importlib.import_module(prefix + target).run for name, target in stages.items()
        }

    return load
