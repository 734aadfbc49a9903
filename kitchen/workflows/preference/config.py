"""The preference workflow's config: the shared training keys plus DPO's own."""

from __future__ import annotations

from pydantic import Field

from kitchen.workflows.common.config import TrainingConfig


class PreferenceConfig(TrainingConfig):
    dataset: str = Field(
        "kitchen/arith-prefs",
        description="pairs {prompt, chosen, rejected}: embedded name, local file, or hub id",
    )
    dpo_beta: float = Field(0.1, gt=0.0, description="DPO's β: how far from the reference")
