"""evaluate: the DPO metrics on held-out pairs, from the policy's current weights.

``test/accuracy`` is the share of pairs whose implicit reward prefers the chosen completion
(β-scaled log-ratio to the reference); ``test/policy_prefers_chosen`` the share where the
policy's own log-probability of chosen is above rejected, which needs no reference and so shows
what training changed in absolute terms (at step 0 every implicit reward is 0).
"""

from __future__ import annotations

from kitchen.engine import faults
from kitchen.stage_api import StageResult
from kitchen.workflows.preference.loss import dpo_stats, sequence_logprobs
from kitchen.workflows.preference.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    data = [d for pair in r.test_pairs for d in pair]
    out = r.training.forward(data, "cross_entropy").result()
    faults.point("evaluate:mid")
    policy = sequence_logprobs(data, [o["logprobs"].to_torch() for o in out.loss_fn_outputs])
    _, metrics = dpo_stats(policy, r.reference.test, ctx.config.dpo_beta)
    prefers = float((policy[0::2] > policy[1::2]).float().mean())
    return StageResult(
        step=r.cursor.step,
        eval_metrics={
            **{f"test/{k}": v for k, v in metrics.items()},
            "test/policy_prefers_chosen": prefers,
            "test/num_pairs": len(r.test_pairs),
        },
    )
