"""What the preference stages share during one attempt, and the context type they take."""

from __future__ import annotations

from dataclasses import dataclass, field

from kitchen.stage_api import StageContext, View
from kitchen.types import Datum
from kitchen.workflows.common.resources import EpochResources
from kitchen.workflows.preference.config import PreferenceConfig
from kitchen.workflows.preference.reference import Reference

Pair = tuple[Datum, Datum]  # (chosen, rejected)


@dataclass
class PreferenceResources(EpochResources):
    pairs: list[Pair] = field(default_factory=list)
    test_pairs: list[Pair] = field(default_factory=list)
    reference: Reference = field(init=False)
    batch: tuple[int, list[int]] = (0, [])  # (step, pair indices) of the batch in hand

    @property
    def examples(self) -> int:
        return len(self.pairs)


Ctx = StageContext[PreferenceConfig, PreferenceResources]
PreferenceView = View[PreferenceConfig, PreferenceResources]
