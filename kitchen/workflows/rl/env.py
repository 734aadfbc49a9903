"""Environment types of reinforcement learning, with tinker-cookbook's names and shapes.

An :class:`Env` is one episode: it gives an initial observation (a prompt) and a stop
condition, and grades the sampled action in :meth:`Env.step`. An :class:`EnvGroupBuilder` makes
the envs of one problem (all sampled from the same prompt, so their rewards can be compared
inside the group) and may add a reward computed over the whole group. An :class:`RLDataset`
hands out the groups of one training step: ``get_batch(index)`` is a pure function of the index
(and the dataset's seed), which is what lets a resumed run ask for step N's problems again.

A recipe plugs its own environment in by writing these classes and naming a factory
(:data:`EnvFactory`) in its ``env`` setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kitchen.renderers import Renderer
from kitchen.types import ModelInput

Action = list[int]
StopCondition = list[str] | list[int]
Metrics = dict[str, float]


@dataclass(frozen=True)
class StepResult:
    """What an env says about an action: its reward, whether the episode ended, and what the
    policy would see next (multi-turn envs; kitchen runs single-turn episodes today)."""

    reward: float
    episode_done: bool
    next_observation: ModelInput
    next_stop_condition: StopCondition
    metrics: Metrics = field(default_factory=dict)


class Env(Protocol):
    """One episode. Envs are single-use: make new ones for another rollout."""

    def initial_observation(self) -> tuple[ModelInput, StopCondition]: ...

    def step(self, action: Action) -> StepResult: ...


class EnvGroupBuilder(Protocol):
    """The envs of one problem. ``compute_group_rewards`` adds a reward per trajectory that
    depends on the whole group (pairwise preferences, say); most builders return zeros."""

    def make_envs(self) -> Sequence[Env]: ...

    def compute_group_rewards(
        self, trajectories: Sequence[Trajectory]
    ) -> list[tuple[float, Metrics]]: ...

    def logging_tags(self) -> list[str]: ...


@dataclass(frozen=True)
class Transition:
    """One turn: what the policy saw, what it sampled (with the sampler's log-probs), and
    what the env gave back."""

    ob: ModelInput
    tokens: tuple[int, ...]
    logprobs: tuple[float, ...]
    reward: float
    episode_done: bool
    metrics: Metrics = field(default_factory=dict)


@dataclass(frozen=True)
class Trajectory:
    transitions: tuple[Transition, ...]
    final_ob: ModelInput = field(default_factory=ModelInput.empty)

    def total_reward(self) -> float:
        return sum(t.reward for t in self.transitions)


@dataclass(frozen=True)
class TrajectoryGroup:
    """The trajectories of one env group, their group rewards, and the seed they were sampled
    with (kept so the record says how to sample them again)."""

    trajectories: tuple[Trajectory, ...]
    final_rewards: tuple[float, ...]
    metrics: tuple[Metrics, ...]
    seed: int = 0
    tags: tuple[str, ...] = ()

    def get_total_rewards(self) -> list[float]:
        """Per trajectory: the env's rewards summed over turns plus the group reward."""
        return [
            t.total_reward() + r for t, r in zip(self.trajectories, self.final_rewards, strict=True)
        ]


class RLDataset(Protocol):
    """Training problems by step. ``get_batch(i)`` depends only on ``i`` and the seed."""

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]: ...

    def __len__(self) -> int: ...


Checker = Callable[[Mapping[str, Any], str], bool]


@dataclass(frozen=True)
class EnvSetup:
    """What an env factory is given: the rows, how to grade them, the renderer, the config."""

    train_rows: Sequence[Mapping[str, Any]]
    test_rows: Sequence[Mapping[str, Any]]
    checker: Checker | None
    renderer: Renderer
    config: Any


@dataclass(frozen=True)
class EnvBundle:
    """A factory's answer: the training dataset, and the held-out groups that ``evaluate``
    answers greedily (one env each; its ``correct`` metric is ``test/accuracy``)."""

    train: RLDataset
    test: Sequence[EnvGroupBuilder] = ()


EnvFactory = Callable[[EnvSetup], EnvBundle]
