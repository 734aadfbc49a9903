"""What the supervised stages share during one attempt, and the context type they take."""

from __future__ import annotations

from dataclasses import dataclass, field

from kitchen.stage_api import StageContext, View
from kitchen.types import Datum
from kitchen.workflows.common.resources import EpochResources
from kitchen.workflows.supervised.config import SupervisedConfig


@dataclass
class SupervisedResources(EpochResources):
    data: list[Datum] = field(default_factory=list)
    sizes: list[tuple[int, float]] = field(default_factory=list)  # (tokens, loss tokens)
    batch: tuple[int, list[Datum]] = (0, [])  # (step, data) of the batch in hand
    batch_stats: tuple[int, int, float] = (0, 0, 0.0)  # sequences, tokens, loss tokens

    @property
    def examples(self) -> int:
        return len(self.data)


Ctx = StageContext[SupervisedConfig, SupervisedResources]
SupervisedView = View[SupervisedConfig, SupervisedResources]
