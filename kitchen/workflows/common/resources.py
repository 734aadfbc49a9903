"""The resources a LoRA training loop holds during one attempt, typed for the stages.

Fields without a default are filled by the set-up stages (``init_session`` sets ``training``);
reading one earlier raises AttributeError, which is a bug in the workflow's order.

The shared stages see every workflow's resources through the same small shape:
``step_in_hand`` (the step the step's stages are working on) and, for a loop in epochs,
``examples`` (how many items an epoch orders), ``order`` and ``batch``. Each workflow's
resources say where those live in its own fields.
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

    @property
    def step_in_hand(self) -> int:
        """The global step of the batch the step's stages are working on."""
        raise NotImplementedError(f"{type(self).__name__} does not say its step in hand")


@dataclass
class EpochResources(TrainingResources):
    """A loop that goes through a fixed list of examples epoch by epoch."""

    order: list[int] = field(default_factory=list)  # this epoch's order of the examples
    batch: tuple[int, Any] = (0, [])  # (step, batch) of the batch in hand

    @property
    def step_in_hand(self) -> int:
        return self.batch[0]

    @property
    def examples(self) -> int:
        """How many examples an epoch puts in order."""
        raise NotImplementedError(f"{type(self).__name__} does not say its examples")
