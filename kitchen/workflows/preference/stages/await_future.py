"""await_future: take the results of submitted steps and turn them into step metrics.

Pipelined: normally it awaits the *previous* step, so the current step's backward keeps the
backend busy while the runner logs and commits; before a checkpoint, an evaluation, the last
step or a stop it drains everything (``kitchen.workflows.common.inflight``).
"""

from __future__ import annotations

from typing import Any

from kitchen.stage_api import StageResult
from kitchen.workflows.common.inflight import await_steps
from kitchen.workflows.common.loop import InFlight
from kitchen.workflows.preference.resources import Ctx

DPO_METRICS = ("dpo_loss", "accuracy", "margin", "chosen_reward", "rejected_reward")


def _metrics(flight: InFlight, fb: Any) -> dict[str, Any]:
    return {
        **{k: float(fb.metrics[k]) for k in DPO_METRICS},
        "num_pairs": flight.num_sequences,
        "num_tokens": flight.num_tokens,
    }


def run(ctx: Ctx) -> StageResult:
    return await_steps(ctx, _metrics)
