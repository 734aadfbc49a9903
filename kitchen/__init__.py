"""kitchen: LLM post-training runs as event-sourced state machines.

This module stays light on purpose: ``import kitchen`` must never import torch,
transformers, datasets or peft, so that ``kitchen runs`` and ``kitchen replay`` start fast.
"""

from kitchen._version import __version__

__all__ = ["__version__"]
