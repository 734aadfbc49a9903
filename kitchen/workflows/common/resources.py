"""The resources a LoRA training loop holds during one attempt, typed for the stages.

Fields without a default are filled by the set-up stages (``init_session`` sets ``training``);
reading one earlier raises AttributeError, which is a bug in the workflow's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kitchen.ports import TrainingClient
from kitchen.renderers import Renderer
from kitchen.workflows.common.loop import Cursor, Pipeline, Plan


@dataclass
class TrainingResources:
    training: TrainingClient = field(init=False)
    tokenizer: Any = field(init=False)
    renderer: Renderer = field(init=False)
    plan: Plan = field(init=False)
    train_rows: list[dict[str, Any]] = field(default_factory=list)
    test_rows: list[dict[str, Any]] = field(default_factory=list)
    cursor: Cursor = field(default_factory=Cursor)
    pipeline: Pipeline = field(default_factory=Pipeline)
