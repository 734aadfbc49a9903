"""What the distillation stages share during one attempt, and the context types they take."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kitchen.ports import SamplingClient
from kitchen.stage_api import StageContext
from kitchen.workflows.distillation.config import OffPolicyConfig, OnPolicyConfig
from kitchen.workflows.distillation.outputs import Completion
from kitchen.workflows.rl.env import EnvGroupBuilder
from kitchen.workflows.rl.resources import RLResources
from kitchen.workflows.supervised.resources import SupervisedResources


@dataclass
class OnPolicyResources(RLResources):
    teacher: SamplingClient = field(init=False)


@dataclass
class OffPolicyResources(SupervisedResources):
    """The supervised loop's resources (the data are the teacher's completions), plus the
    teacher and RL's held-out problem envs for the greedy exact-match evaluation."""

    teacher: SamplingClient = field(init=False)
    test_groups: Sequence[EnvGroupBuilder] = ()
    completions: list[Completion] = field(default_factory=list)


OnPolicyCtx = StageContext[OnPolicyConfig, OnPolicyResources]
OffPolicyCtx = StageContext[OffPolicyConfig, OffPolicyResources]
