"""Workflows by name. Each module defines ``WORKFLOW`` and ``stages()``."""

from __future__ import annotations

import importlib
from typing import Any

from kitchen.errors import NotFound

WORKFLOWS = {"supervised": "kitchen.workflows.supervised"}


def workflow_module(name: str) -> Any:
    target = WORKFLOWS.get(name)
    if target is None:
        raise NotFound(f"unknown workflow {name!r}; known: {', '.join(sorted(WORKFLOWS))}")
    return importlib.import_module(target)


def load_workflow(name: str) -> tuple[Any, dict[str, Any]]:
    mod = workflow_module(name)
    return mod.WORKFLOW, mod.stages()
