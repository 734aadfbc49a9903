"""The stages: one small module each, ``run(ctx) -> outputs``.

Stages get a :class:`kitchen.runner.StageContext` and return small JSON-able outputs (or a
``StageResult`` with events to record). They never touch the event store or the machine.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

SUPERVISED = (
    "load_dataset",
    "init_session",
    "init_tokenizer",
    "build_supervised_dataset",
    "set_epoch",
    "get_batch",
    "forward_backward",
    "optim_step",
    "await_future",
    "log_step_metrics",
    "log_epoch_metrics",
    "save_checkpoint",
    "save_final_weights",
    "evaluate",
    "cleanup",
)


def load(names: tuple[str, ...]) -> dict[str, Callable[[Any], Any]]:
    return {n: importlib.import_module(f"kitchen.stages.{n}").run for n in names}
