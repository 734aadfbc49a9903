"""cleanup: release the training session (the worker thread, the model's memory)."""

from __future__ import annotations

from typing import Any


def run(ctx: Any) -> dict[str, Any]:
    closers = getattr(ctx.resources, "closers", [])
    for close in closers:
        close()
    ctx.resources.closers = []
    return {"closed": len(closers)}
