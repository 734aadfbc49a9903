"""build_env: make the env dataset (the recipe's env factory) and plan the steps.

The grader of the problems comes from the dataset port (``answer_checker``: exact match for
the embedded sets), so envs never import dataset code. On resume the cursor comes back from the
checkpoint; batch ``i`` is a pure function of ``i``, so nothing else needs restoring.
"""

from __future__ import annotations

from typing import Any

from kitchen.errors import ConfigError
from kitchen.ports import SamplingClient
from kitchen.stage_api import StageResult
from kitchen.workflows.common.loop import Cursor, Pipeline, Plan
from kitchen.workflows.common.session import open_frozen
from kitchen.workflows.rl import envs
from kitchen.workflows.rl.env import EnvSetup
from kitchen.workflows.rl.resources import Ctx, StepBatch


def run(ctx: Ctx) -> StageResult:
    cfg, r = ctx.config, ctx.resources
    factory = envs.resolve(cfg.env)
    checker = ctx.ports.datasets.answer_checker(cfg.dataset)
    judge: SamplingClient | None = None
    judged: dict[str, Any] = {}
    if "judge" in ctx.lineage:
        base = getattr(cfg, "judge_base_model", None) or cfg.model_name
        judge, judged = open_frozen(ctx, "judge", str(base))
    setup = EnvSetup(r.train_rows, r.test_rows, checker, r.renderer, cfg, judge)
    bundle = factory(setup)
    total = len(bundle.train)
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    if total < 1:
        raise ConfigError(
            f"dataset {cfg.dataset!r} has {len(r.train_rows)} rows, fewer than "
            f"groups_per_batch={cfg.groups_per_batch}"
        )
    r.dataset = bundle.train
    r.test_groups = list(bundle.test)
    r.plan = Plan(len(r.train_rows), cfg.groups_per_batch, total, total)
    r.pipeline = Pipeline()
    r.batch = StepBatch()
    r.cursor = Cursor(epoch=0)
    out: dict[str, Any] = {"env": cfg.env, "steps": total, "test_groups": len(r.test_groups)}
    if judged:
        out["judge"] = judged
    if ctx.resume is not None:
        r.cursor = Cursor.from_dict(ctx.resume.checkpoint.cursor)
        out["cursor"] = r.cursor.as_dict()
    return StageResult(out, total_steps=total)
