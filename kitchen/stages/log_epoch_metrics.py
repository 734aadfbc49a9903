"""log_epoch_metrics: summarise the epoch that just ended from the logged step metrics."""

from __future__ import annotations

from typing import Any


def run(ctx: Any) -> dict[str, Any]:
    epoch = ctx.resources.cursor.epoch
    losses = [
        m["train_mean_nll"]
        for m in ctx.state.step_metrics.values()
        if m.get("epoch") == epoch and "train_mean_nll" in m
    ]
    out: dict[str, Any] = {"epoch": epoch, "steps_logged": len(losses)}
    if losses:
        out["epoch_mean_nll"] = sum(losses) / len(losses)
    return out
