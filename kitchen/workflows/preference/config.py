"""The preference workflow's config: the shared training keys plus DPO's own."""

from __future__ import annotations

from pydantic import Field

from kitchen import config as kconfig
from kitchen.workflows.common.config import TrainingConfig


class PreferenceConfig(TrainingConfig):
    dataset: str = Field(
        "kitchen/arith-prefs",
        description="pairs {prompt, chosen, rejected}: embedded name, local file, or hub id",
    )
    dpo_beta: float = Field(0.1, gt=0.0, description="DPO's β: how far from the reference")
    one_pass_custom_loss: bool = kconfig.operating(
        True,
        moves_floats=True,
        absent=False,
        description="take DPO's gradient on the forward pass the backward uses where the "
        "backend offers it (in-process, a step within one micro-batch); false: always a "
        "forward then a forward_backward (tinker's way, what remote backends do)",
    )
