"""await_future: take the step's results, finish its metrics and leave them for
``log_step_metrics`` (``pipeline.ready``).

On-policy RL drains every step: the next step samples on the weights this step produces (the
sampler snapshot waits for them), so there is no later step to overlap with, unlike sl_basic's
submit-ahead. The KL and entropy metrics compare the trainer's log-probs of the sampled tokens,
before the update, with the sampler's.
"""

from __future__ import annotations

import time

from kitchen.stage_api import StageResult
from kitchen.workflows.rl.metrics import kl_metrics
from kitchen.workflows.rl.resources import Ctx


def run(ctx: Ctx) -> StageResult:
    r, b = ctx.resources, ctx.resources.batch
    flight = r.pipeline.inflight.pop(b.step)
    fb = flight.fb.result()
    flight.optim.result()
    elapsed = max(time.perf_counter() - flight.submitted_at, 1e-9)
    sampled = [d.loss_fn_inputs["logprobs"] for d in b.data]
    trained = [out["logprobs"] for out in fb.loss_fn_outputs]
    loss = float(fb.metrics["loss:sum"])
    b.metrics.update(kl_metrics(sampled, trained, b.masks))
    b.metrics.update(
        {
            "optim/loss": loss,
            "learning_rate": flight.learning_rate,
            "progress": (b.step + 1) / r.plan.total_steps,
            "num_sequences": float(flight.num_sequences),
            "num_tokens": float(flight.num_tokens),
            "num_loss_tokens": flight.num_loss_tokens,
            "time/train_s": elapsed,
        }
    )
    r.pipeline.ready[b.step] = dict(sorted(b.metrics.items()))
    return StageResult({"awaited": [b.step]}, step=b.step)
