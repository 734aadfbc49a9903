"""build_distillation_dataset: the teacher's completions as supervised data, and the held-out
problems as RL's envs.

Each completion becomes a datum whose loss covers the completion tokens only (the prompt is
context), exactly as ``sl_basic`` trains on the assistant's reply. On resume the cursor comes
back from the checkpoint and the epoch's order is rebuilt from (seed, epoch).
"""

from __future__ import annotations

from kitchen.errors import ConfigError
from kitchen.renderers import datum_from_model_input_weights
from kitchen.stage_api import StageResult
from kitchen.types import ModelInput
from kitchen.workflows.distillation.resources import OffPolicyCtx
from kitchen.workflows.rl.arith import ProblemGroupBuilder, reference_match
from kitchen.workflows.supervised.epochs import start_epochs


def run(ctx: OffPolicyCtx) -> StageResult:
    cfg, r = ctx.config, ctx.resources
    data = []
    for c in r.completions:
        tokens = list(c.ob) + list(c.tokens)
        weights = [0.0] * len(c.ob) + [1.0] * len(c.tokens)
        data.append(
            datum_from_model_input_weights(ModelInput.from_ints(tokens), weights, cfg.max_length)
        )
    per_epoch = len(data) // cfg.batch_size
    if per_epoch == 0:
        raise ConfigError(
            f"{len(data)} teacher completions, fewer than batch_size={cfg.batch_size}: "
            "lower batch_size or use more prompts"
        )
    check = ctx.ports.datasets.answer_checker(cfg.dataset) or reference_match
    r.test_groups = [
        ProblemGroupBuilder(row, r.renderer, check, cfg.format_coef, 1) for row in r.test_rows
    ]
    return start_epochs(ctx, data, per_epoch)
