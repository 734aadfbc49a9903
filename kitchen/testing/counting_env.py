"""A multi-turn env whose steps must happen exactly once, counting them outside the run.

The ``feedback`` env (``kitchen.workflows.rl.feedback``) with ``effects = "once"``: each call
of ``step`` appends one JSON line ``{"episode", "turn", "action"}`` to the file named by
``KITCHEN_COUNTING_FILE`` (flushed and fsynced before the step returns, as a real effect
would be), and each call of the unknown-outcome hook appends ``{"episode", "turn",
"happened"}`` to that file's ``.unknown`` sibling. The hook finds out what happened the way a
real env does with an idempotency key: it looks for the step's line; when it is there the
step is not done again (its result is computed without the effect), when it is not the step
is done now. The crash tests run ``kitchen run rl_multiturn env=kitchen.testing.counting_env:make``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitchen.workflows.rl.arith import ProblemDataset, reference_match
from kitchen.workflows.rl.env import Action, Env, EnvBundle, EnvSetup, StepResult
from kitchen.workflows.rl.feedback import FeedbackEnv, FeedbackGroupBuilder

FILE_ENV = "KITCHEN_COUNTING_FILE"


def _counting_file() -> Path:
    value = os.environ.get(FILE_ENV)
    if not value:
        raise RuntimeError(f"set {FILE_ENV} to the file the counting env appends its calls to")
    return Path(value)


def _append(path: Path, doc: Mapping[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(doc, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@dataclass
class CountingEnv(FeedbackEnv):
    effects = "once"

    @property
    def episode(self) -> str:
        return f"{self.row['prompt'][-1]['content']}#{self.index}"

    def step(self, action: Action) -> StepResult:
        _append(_counting_file(), {"episode": self.episode, "turn": self.turn, "action": action})
        return super().step(action)

    def on_unknown_outcome(self, action: Action) -> StepResult:
        done = _counting_file()
        happened = any(
            d["episode"] == self.episode and d["turn"] == self.turn for d in read_lines(done)
        )
        unknown = done.with_name(done.name + ".unknown")
        _append(unknown, {"episode": self.episode, "turn": self.turn, "happened": happened})
        if not happened:
            return self.step(action)
        result, added = self._outcome(action)
        self.replay_step(action, result, added)
        return result


@dataclass(frozen=True)
class CountingGroupBuilder(FeedbackGroupBuilder):
    def make_envs(self) -> Sequence[Env]:
        return [
            CountingEnv(self.row, self.renderer, self.check, self.format_coef, j)
            for j in range(self.group_size)
        ]


def make(setup: EnvSetup) -> EnvBundle:
    """The training problems as counting envs; no held-out envs (evaluation would call them)."""
    cfg = setup.config
    check = setup.checker or reference_match
    train = ProblemDataset(
        rows=list(setup.train_rows),
        make=lambda row: CountingGroupBuilder(
            row, setup.renderer, check, cfg.format_coef, cfg.group_size
        ),
        groups_per_batch=cfg.groups_per_batch,
        num_epochs=cfg.num_epochs,
        seed=cfg.seed,
    )
    return EnvBundle(train=train, test=())
