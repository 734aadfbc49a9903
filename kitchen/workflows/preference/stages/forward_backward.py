"""forward_backward: the DPO loss's gradient for the batch, through the training port.

In one pass where the backend offers it (``forward_backward_custom_loss``: in-process, the
step within one micro-batch, ``one_pass_custom_loss``): the loss runs on the log-probabilities
of the forward pass the backward uses, and the whole call is left running. Otherwise tinker's
way: a forward pass gives the pairs' log-probabilities, the loss is differentiated here, and a
plain forward_backward carries the gradient; the forward waits for the previous step's
optimizer update (it must see the new weights), the backward is left running while the runner
logs the previous step. The loss is the mean over the step's pairs either way.
"""

from __future__ import annotations

import time

from kitchen.stage_api import StageResult
from kitchen.workflows.common.custom_loss import forward_backward_custom_loss
from kitchen.workflows.common.inflight import submit
from kitchen.workflows.preference.loss import dpo_loss
from kitchen.workflows.preference.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    step, idx = r.batch
    data = [d for i in idx for d in r.pairs[i]]
    submitted = time.perf_counter()
    loss = dpo_loss(ctx.config.dpo_beta, r.reference.train[idx])
    fb = forward_backward_custom_loss(
        r.training, data, loss, one_pass=ctx.config.one_pass_custom_loss
    )
    sizes = (
        len(idx),
        sum(d.model_input.length for d in data),
        sum(float(sum(d.loss_fn_inputs["weights"].data)) for d in data),
    )
    submit(r, step, fb, sizes, submitted)
    return StageResult(step=step)
