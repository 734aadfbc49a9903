"""The embedded verifiable-reward environment: short arithmetic and string problems
(``kitchen/arith-rl``), graded by exact match.

Reward, as tinker-cookbook's problem envs give it: ``format_coef · (correct_format − 1) +
correct``, where ``correct`` is the dataset's answer check (``check_answer`` for the embedded
sets, through the dataset port) and ``correct_format`` says the reply ended with the stop
token. The grader comes in through :class:`EnvSetup`, so this module needs no dataset code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kitchen.renderers import Renderer
from kitchen.types import ModelInput
from kitchen.workflows.common.loop import epoch_order
from kitchen.workflows.rl.env import (
    Action,
    Checker,
    Env,
    EnvBundle,
    EnvGroupBuilder,
    EnvSetup,
    Metrics,
    StepResult,
    StopCondition,
    Trajectory,
)


def reference_match(row: Mapping[str, Any], completion: str) -> bool:
    """The grader of a dataset that defines none: the reply equals the row's ``answer``."""
    return completion.strip() == str(row["answer"]).strip()


@dataclass(frozen=True)
class ProblemEnv:
    """One attempt at one problem: prompt in, a single reply out, graded once."""

    row: Mapping[str, Any]
    renderer: Renderer
    check: Checker
    format_coef: float

    def initial_observation(self) -> tuple[ModelInput, StopCondition]:
        prompt = self.renderer.build_generation_prompt(self.row["prompt"])
        return prompt, self.renderer.get_stop_sequences()

    def step(self, action: Action) -> StepResult:
        message, well_formed = self.renderer.parse_response(action)
        correct = bool(self.check(self.row, str(message.get("content", "")).strip()))
        reward = self.format_coef * (float(well_formed) - 1.0) + float(correct)
        return StepResult(
            reward=reward,
            episode_done=True,
            next_observation=ModelInput.empty(),
            next_stop_condition=self.renderer.get_stop_sequences(),
            metrics={"format": float(well_formed), "correct": float(correct)},
        )


@dataclass(frozen=True)
class ProblemGroupBuilder:
    """``group_size`` envs on the same problem; no group reward."""

    row: Mapping[str, Any]
    renderer: Renderer
    check: Checker
    format_coef: float
    group_size: int

    def make_envs(self) -> Sequence[Env]:
        env = ProblemEnv(self.row, self.renderer, self.check, self.format_coef)
        return [env] * self.group_size  # stateless: one object serves the whole group

    def compute_group_rewards(
        self, trajectories: Sequence[Trajectory]
    ) -> list[tuple[float, Metrics]]:
        return [(0.0, {}) for _ in trajectories]

    def logging_tags(self) -> list[str]:
        return ["arith"]


@dataclass(frozen=True)
class ProblemDataset:
    """Batches of ``groups_per_batch`` problems in a seeded order per epoch: batch ``i`` is a
    pure function of ``i`` and the seed, so a resumed run gets step N's problems back."""

    rows: Sequence[Mapping[str, Any]]
    make: Callable[[Mapping[str, Any]], EnvGroupBuilder]
    groups_per_batch: int
    num_epochs: int
    seed: int

    @property
    def per_epoch(self) -> int:
        return len(self.rows) // self.groups_per_batch

    def __len__(self) -> int:
        return self.per_epoch * self.num_epochs

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        epoch, within = divmod(index, self.per_epoch)
        order = epoch_order(len(self.rows), self.seed, epoch)
        picked = order[within * self.groups_per_batch : (within + 1) * self.groups_per_batch]
        return [self.make(self.rows[i]) for i in picked]


def make_env(setup: EnvSetup) -> EnvBundle:
    """The ``arith`` env factory: rows with a ``prompt`` (messages) and an ``answer``."""
    cfg = setup.config
    check = setup.checker or reference_match

    def builder(row: Mapping[str, Any], size: int) -> ProblemGroupBuilder:
        return ProblemGroupBuilder(row, setup.renderer, check, cfg.format_coef, size)

    train = ProblemDataset(
        rows=list(setup.train_rows),
        make=lambda row: builder(row, cfg.group_size),
        groups_per_batch=cfg.groups_per_batch,
        num_epochs=cfg.num_epochs,
        seed=cfg.seed,
    )
    test = [builder(row, 1) for row in setup.test_rows]
    return EnvBundle(train=train, test=test)
