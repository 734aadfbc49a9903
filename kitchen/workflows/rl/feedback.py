"""A multi-turn environment on the embedded problems: answer, hear whether it was right, try
again (the ``feedback`` env of ``rl_multiturn``).

Each turn the policy answers the problem. A right answer ends the episode with reward 1; a
wrong one, while turns are left, gets a feedback turn from the user — ``Too high.`` or ``Too
low.`` for a numeric answer, ``Wrong.`` otherwise, then ``Try again.`` — and the policy answers
again with the whole conversation in view (the renderer builds it). Every turn also carries
tinker-cookbook's format term, ``format_coef · (ended with the stop token − 1)``. The episode
is solved when some turn is right: its last step's ``correct`` metric says so, and held-out
evaluation reports it as ``test/accuracy`` (success within ``max_turns``).

The env keeps the conversation between turns, so it defines ``replay_step``: a resumed run
that reads a step's result from the log gives it back and the conversation follows. Its steps
have no effect outside the run (``effects = "none"``): their results are on record in the
step's rollouts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kitchen.renderers import Renderer
from kitchen.types import ModelInput
from kitchen.workflows.rl.arith import ProblemDataset, reference_match
from kitchen.workflows.rl.env import (
    Action,
    Checker,
    Env,
    EnvBundle,
    EnvSetup,
    Metrics,
    StepResult,
    StopCondition,
    Trajectory,
)


def feedback(row: Mapping[str, Any], reply: str) -> str:
    """What the user says to a wrong reply."""
    answer = str(row["answer"]).strip()
    try:
        said, right = int(reply), int(answer)
    except ValueError:
        return "Wrong. Try again."
    return ("Too high." if said > right else "Too low.") + " Try again."


@dataclass
class FeedbackEnv:
    """One episode on one problem; the conversation grows by two messages per wrong turn."""

    row: Mapping[str, Any]
    renderer: Renderer
    check: Checker
    format_coef: float
    index: int = 0
    messages: list[dict[str, str]] = field(default_factory=list)
    turn: int = 0
    effects = "none"

    def __post_init__(self) -> None:
        self.messages = [dict(m) for m in self.row["prompt"]]

    def initial_observation(self) -> tuple[ModelInput, StopCondition]:
        return self.renderer.build_generation_prompt(self.messages), self._stop()

    def _stop(self) -> StopCondition:
        return self.renderer.get_stop_sequences()

    def _outcome(self, action: Action) -> tuple[StepResult, list[dict[str, str]]]:
        """The step's result and the messages it adds, without touching the env."""
        message, well_formed = self.renderer.parse_response(action)
        reply = str(message.get("content", "")).strip()
        correct = bool(self.check(self.row, reply))
        reward = self.format_coef * (float(well_formed) - 1.0) + float(correct)
        metrics = {"format": float(well_formed), "correct": float(correct)}
        if correct:
            return StepResult(reward, True, ModelInput.empty(), self._stop(), metrics), []
        added = [
            {"role": "assistant", "content": reply},
            {"role": "user", "content": feedback(self.row, reply)},
        ]
        ob = self.renderer.build_generation_prompt([*self.messages, *added])
        return StepResult(reward, False, ob, self._stop(), metrics), added

    def step(self, action: Action) -> StepResult:
        result, added = self._outcome(action)
        self.replay_step(action, result, added)
        return result

    def replay_step(
        self, action: Action, result: StepResult, added: list[dict[str, str]] | None = None
    ) -> None:
        """Follow a step whose result is known (from the log, or just computed)."""
        if added is None:
            added = self._outcome(action)[1]
        self.messages.extend(added)
        self.turn += 1


@dataclass(frozen=True)
class FeedbackGroupBuilder:
    """``group_size`` episodes on the same problem; no group reward."""

    row: Mapping[str, Any]
    renderer: Renderer
    check: Checker
    format_coef: float
    group_size: int

    def make_envs(self) -> Sequence[Env]:
        return [
            FeedbackEnv(self.row, self.renderer, self.check, self.format_coef, j)
            for j in range(self.group_size)
        ]

    def compute_group_rewards(
        self, trajectories: Sequence[Trajectory]
    ) -> list[tuple[float, Metrics]]:
        return [(0.0, {}) for _ in trajectories]

    def logging_tags(self) -> list[str]:
        return ["feedback"]


def make_env(setup: EnvSetup) -> EnvBundle:
    """The ``feedback`` env factory: rows with a ``prompt`` (messages) and an ``answer``."""
    cfg = setup.config
    check = setup.checker or reference_match

    def builder(row: Mapping[str, Any], size: int) -> FeedbackGroupBuilder:
        return FeedbackGroupBuilder(row, setup.renderer, check, cfg.format_coef, size)

    train = ProblemDataset(
        rows=list(setup.train_rows),
        make=lambda row: builder(row, cfg.group_size),
        groups_per_batch=cfg.groups_per_batch,
        num_epochs=cfg.num_epochs,
        seed=cfg.seed,
    )
    test = [builder(row, 1) for row in setup.test_rows]
    return EnvBundle(train=train, test=test)
