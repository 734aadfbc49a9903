"""await_future: take the results of submitted steps and turn them into step metrics.

Pipelined: normally it awaits the *previous* step; before a checkpoint, an evaluation, the last
step or a stop it drains everything (``kitchen.workflows.common.inflight``).
"""

from __future__ import annotations

from typing import Any

from kitchen.stage_api import StageResult
from kitchen.workflows.common.inflight import await_steps
from kitchen.workflows.common.loop import InFlight
from kitchen.workflows.supervised.resources import Ctx


def _metrics(flight: InFlight, fb: Any) -> dict[str, Any]:
    loss_sum = float(fb.metrics["loss:sum"])
    return {
        "num_sequences": flight.num_sequences,
        "num_tokens": flight.num_tokens,
        "num_loss_tokens": flight.num_loss_tokens,
        "train_mean_nll": loss_sum / max(flight.num_loss_tokens, 1.0),
    }


def run(ctx: Ctx) -> StageResult:
    return await_steps(ctx, _metrics)
