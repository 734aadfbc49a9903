"""The RL workflow's config: the shared training keys plus tinker-cookbook's RL keys."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from kitchen import config as kconfig
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.rl.advantages import LossAggregation

ENV_NAME = re.compile(r"^([A-Za-z_][\w-]*|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$")


class RLConfig(TrainingConfig):
    dataset: str = Field(
        "kitchen/arith-rl", description="problems: rows with a 'prompt' (messages) and 'answer'"
    )
    env: str = Field(
        "arith",
        description="the env factory: a built-in name (arith, feedback, judged) or module:function "
        "returning an EnvBundle",
    )
    group_size: int = Field(8, ge=1, description="samples per problem (one sample call)")
    groups_per_batch: int = Field(8, ge=1, description="problems per step")
    max_tokens: int = Field(8, ge=1, description="longest sampled reply, in tokens")
    temperature: float = Field(1.0, gt=0.0, description="sampling temperature of rollouts")
    loss_fn: Literal["importance_sampling", "ppo"] = "importance_sampling"
    format_coef: float = Field(
        0.1, ge=0.0, description="reward term format_coef · (ended with the stop token − 1)"
    )
    advantages_by_std: bool = Field(
        False, description="divide advantages by the group's std + 1e-4 (TRL's GRPO default)"
    )
    remove_constant_reward_groups: bool = Field(
        False, description="drop groups whose rewards are all equal (they carry no gradient)"
    )
    loss_aggregation: LossAggregation = kconfig.added(
        "sum",
        absent="sum",
        description="how token terms add up, applied through the advantages: sum (tinker's), "
        "dapo (mean over the batch's completion tokens), grpo (each sequence's token mean, "
        "then the mean over sequences), dr_grpo (sum over sequences × max_tokens)",
    )

    @field_validator("env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not ENV_NAME.match(value):
            raise ValueError("use a built-in env name (arith) or module.path:function")
        return value

    @model_validator(mode="after")
    def _judge_named(self) -> RLConfig:
        if self.env == "judged" and not (
            getattr(self, "judge_model", None) or getattr(self, "judge_checkpoint", None)
        ):
            raise ValueError(
                "env=judged needs a judge: set judge_model=<model> or judge_checkpoint=run:<id> "
                "(recipe rl_multiturn)"
            )
        return self


class MultiTurnConfig(RLConfig):
    """RL with multi-turn episodes: the turn limit and the token budget of an episode."""

    max_turns: int = Field(3, ge=1, description="turns an episode may take at most")
    max_episode_tokens: int | None = Field(
        256,
        ge=2,
        description="tokens an episode may hold (observations and replies); a turn is sampled "
        "only while the observation leaves room (None: no budget)",
    )
    judge_checkpoint: str | None = Field(
        None,
        description="the judge's weights (env=judged): run:<id>[@<checkpoint or step>], a state "
        "or adapter folder, or a base model",
    )
    judge_model: str | None = Field(
        None, description="the judge as a base model (embedded name, model folder or hub id)"
    )
    judge_base_model: str | None = Field(
        None, description="the base model under a judge adapter (default: model_name)"
    )
