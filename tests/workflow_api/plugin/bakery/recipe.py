"""bake_basic: the bakery's only recipe."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

NAME = "bake_basic"
DESCRIPTION = "Bake loaves on a fake oven (test plugin)"
WORKFLOW = "bakery"
ADAPTERS = {"training": "oven", "datasets": "hf_datasets", "blobs": "local"}


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(6, ge=1)
    save_every: int = Field(2, ge=0)
    heat: float = Field(0.5, gt=0.0)
    seed: int = 0
    adapters: dict[str, str] = Field(default_factory=dict)
