"""kitchen: LLM post-training runs as event-sourced state machines.

This module stays light on purpose: ``import kitchen`` must never import torch,
transformers, datasets or peft, so that ``kitchen runs`` and ``kitchen replay`` start fast.
The Python API, ``kitchen.api``, is imported on first use (``kitchen.api.run(...)``), and is
light itself until one of its functions runs.
"""

from typing import Any

from kitchen._version import __version__

__all__ = ["__version__", "api"]


def __getattr__(name: str) -> Any:
    if name == "api":
        import importlib

        return importlib.import_module("kitchen.api")
    raise AttributeError(f"module 'kitchen' has no attribute {name!r}")
