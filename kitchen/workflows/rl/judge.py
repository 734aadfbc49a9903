"""Rewards from a model: an LLM judge through a sampling client (the ``judged`` env).

The judge is a frozen sampling client of another run's weights or a base model, named by
``judge_checkpoint`` (``run:<id>[@checkpoint]``, a folder) or ``judge_model`` (a base model);
launch records it in the run's lineage (role ``judge``, sha256 checked on every resume) and
``build_env`` opens it. :class:`LLMJudge` asks it, greedily, whether a reply answers a
question, and reads ``yes`` as 1.0.

The ``judged`` env answers each problem in one turn and takes its reward from the judge. A
call to a judge costs and may be repeated, so its steps declare ``effects = "idempotent"``:
each step's result, with the judge's verdict as its ``effect``, is recorded as an activity
before the next turn is sampled, and a resumed run reads the verdicts on record instead of
asking again (``docs/rl.md``, "Durable environment steps"). The exact-match check stays a
metric (``correct``), so ``test/accuracy`` still measures the answers, not the judge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kitchen.errors import ConfigError
from kitchen.ports import SamplingClient
from kitchen.renderers import Renderer
from kitchen.types import ModelInput, SamplingParams
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

QUESTION = "Question: {question}\nAnswer: {reply}\nIs the answer right? Say yes or no."


@dataclass(frozen=True)
class LLMJudge:
    """A verdict from a sampling client: greedy, ``max_tokens`` tokens, seeded."""

    client: SamplingClient
    renderer: Renderer
    seed: int = 0
    max_tokens: int = 4

    def verdict(self, question: str, reply: str) -> str:
        prompt = self.renderer.build_generation_prompt(
            [{"role": "user", "content": QUESTION.format(question=question, reply=reply)}]
        )
        stop = self.renderer.get_stop_sequences()
        params = SamplingParams(
            max_tokens=self.max_tokens,
            temperature=0.0,
            stop=tuple(stop),  # type: ignore[arg-type]  # str or int tuple, as the renderer gave
            seed=self.seed,
        )
        seq = self.client.sample(prompt, 1, params).result().sequences[0]
        message, _ = self.renderer.parse_response(list(seq.tokens))
        return str(message.get("content", "")).strip()

    @staticmethod
    def score(verdict: str) -> float:
        return 1.0 if verdict.lower().startswith("yes") else 0.0


@dataclass(frozen=True)
class JudgedEnv:
    """One reply to one problem, rewarded by the judge."""

    row: Mapping[str, Any]
    renderer: Renderer
    check: Checker
    judge: LLMJudge
    format_coef: float
    effects = "idempotent"

    def initial_observation(self) -> tuple[ModelInput, StopCondition]:
        prompt = self.renderer.build_generation_prompt(self.row["prompt"])
        return prompt, self.renderer.get_stop_sequences()

    def step(self, action: Action) -> StepResult:
        message, well_formed = self.renderer.parse_response(action)
        reply = str(message.get("content", "")).strip()
        question = str(self.row["prompt"][-1]["content"])
        verdict = self.judge.verdict(question, reply)
        judged = self.judge.score(verdict)
        reward = self.format_coef * (float(well_formed) - 1.0) + judged
        return StepResult(
            reward=reward,
            episode_done=True,
            next_observation=ModelInput.empty(),
            next_stop_condition=self.renderer.get_stop_sequences(),
            metrics={
                "format": float(well_formed),
                "correct": float(bool(self.check(self.row, reply))),
                "judge": judged,
            },
            effect={"judge_verdict": verdict},
        )


@dataclass(frozen=True)
class JudgedGroupBuilder:
    row: Mapping[str, Any]
    renderer: Renderer
    check: Checker
    judge: LLMJudge
    format_coef: float
    group_size: int

    def make_envs(self) -> Sequence[Env]:
        env = JudgedEnv(self.row, self.renderer, self.check, self.judge, self.format_coef)
        return [env] * self.group_size  # no state between calls: one object serves the group

    def compute_group_rewards(
        self, trajectories: Sequence[Trajectory]
    ) -> list[tuple[float, Metrics]]:
        return [(0.0, {}) for _ in trajectories]

    def logging_tags(self) -> list[str]:
        return ["judged"]


def make_env(setup: EnvSetup) -> EnvBundle:
    """The ``judged`` env factory: rows with a ``prompt`` (messages); needs a judge."""
    if setup.judge is None:
        raise ConfigError(
            "env 'judged' needs a judge: set judge_model=<model> or judge_checkpoint=run:<id>"
        )
    cfg = setup.config
    check = setup.checker or reference_match
    judge = LLMJudge(setup.judge, setup.renderer, seed=cfg.seed)

    def builder(row: Mapping[str, Any], size: int) -> JudgedGroupBuilder:
        return JudgedGroupBuilder(row, setup.renderer, check, judge, cfg.format_coef, size)

    train = ProblemDataset(
        rows=list(setup.train_rows),
        make=lambda row: builder(row, cfg.group_size),
        groups_per_batch=cfg.groups_per_batch,
        num_epochs=cfg.num_epochs,
        seed=cfg.seed,
    )
    return EnvBundle(train=train, test=[builder(row, 1) for row in setup.test_rows])
