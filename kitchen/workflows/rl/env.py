"""Environment types of reinforcement learning, with tinker-cookbook's names and shapes.

An :class:`Env` is one episode: it gives an initial observation (a prompt) and a stop
condition, and answers each sampled action in :meth:`Env.step` with a reward and, until the
episode is done, the next observation (the whole conversation so far, built by the renderer)
that the policy samples its next turn from. An :class:`EnvGroupBuilder` makes
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
from typing import Any, Literal, Protocol

from kitchen.ports import SamplingClient
from kitchen.renderers import Renderer
from kitchen.types import ModelInput

Action = list[int]
StopCondition = list[str] | list[int]
Metrics = dict[str, float]


Effects = Literal["none", "idempotent", "once"]
"""What an env's steps do outside the run, as the env declares it (``Env.effects``):

- ``none``: nothing; a step is a pure function of the action (a grader). Its results are on
  record in the step's rollouts only. The default of an env that does not say.
- ``idempotent``: a step has an effect that may happen again (a read, a cached tool call):
  each result is recorded as an activity before the next turn is sampled; a resumed run
  replays recorded steps and calls the env again for a step it never recorded.
- ``once``: a step's effect must never happen twice (a write, a paid call): its start is
  recorded before the call and its result after; a resumed run never calls the env for a
  step whose start is on record, and asks ``on_unknown_outcome`` when its result is not.
"""


@dataclass(frozen=True)
class StepResult:
    """What an env says about an action: its reward, whether the episode ended, what the
    policy sees next (the whole observation of the next turn) and ``effect``: what the step
    did outside the run, in the env's words (JSON-able), recorded with the result."""

    reward: float
    episode_done: bool
    next_observation: ModelInput
    next_stop_condition: StopCondition
    metrics: Metrics = field(default_factory=dict)
    effect: Mapping[str, Any] = field(default_factory=dict)


class Env(Protocol):
    """One episode. Envs are single-use: make new ones for another rollout.

    Optional, for envs whose steps have effects (see :data:`Effects`): an ``effects``
    attribute; ``replay_step(action, result)``, called instead of ``step`` when a resumed run
    reads a step's result from the log, so an env that keeps state between turns follows
    without repeating the effect; and, for ``effects = "once"``,
    ``on_unknown_outcome(action) -> StepResult``, called instead of ``step`` when the step's
    start is on record and its result is not (the process died after the call began): the env
    finds out what happened (an idempotency key, a look at the world) and says so, or
    raises to stop the run."""

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
    """What an env factory is given: the rows, how to grade them, the renderer, the config,
    and ``judge``: a frozen sampling client of the run's judge (``judge_model`` /
    ``judge_checkpoint``), or None when the run names none."""

    train_rows: Sequence[Mapping[str, Any]]
    test_rows: Sequence[Mapping[str, Any]]
    checker: Checker | None
    renderer: Renderer
    config: Any
    judge: SamplingClient | None = None


@dataclass(frozen=True)
class EnvBundle:
    """A factory's answer: the training dataset, and the held-out groups that ``evaluate``
    answers greedily (one env each; its ``correct`` metric is ``test/accuracy``)."""

    train: RLDataset
    test: Sequence[EnvGroupBuilder] = ()


EnvFactory = Callable[[EnvSetup], EnvBundle]
