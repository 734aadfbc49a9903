"""What the RL stages share during one attempt, and the context type they take."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kitchen.stage_api import StageContext, View
from kitchen.types import Datum
from kitchen.workflows.common.resources import TrainingResources
from kitchen.workflows.rl.config import RLConfig
from kitchen.workflows.rl.env import EnvGroupBuilder, RLDataset, TrajectoryGroup


@dataclass
class StepBatch:
    """The step in hand: its trajectory groups (as recorded), the data built from them with
    each datum's completion mask, and the metrics gathered on the way."""

    step: int = -1
    groups: list[TrajectoryGroup] = field(default_factory=list)
    data: list[Datum] = field(default_factory=list)
    masks: list[list[float]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class RLResources(TrainingResources):
    dataset: RLDataset = field(init=False)
    test_groups: Sequence[EnvGroupBuilder] = ()
    batch: StepBatch = field(default_factory=StepBatch)

    @property
    def step_in_hand(self) -> int:
        return self.batch.step


Ctx = StageContext[RLConfig, RLResources]
RLView = View[RLConfig, RLResources]
