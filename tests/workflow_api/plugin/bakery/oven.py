"""A fake training backend: the oven. Its "weights" are four floats, its loss a fixed function
of them and the batch, its state a JSON file. Deterministic, instant, and shaped like the
factory and training ports, so the engine cannot tell it from a real one.

``BAKERY_BURN_STEP=N`` (read at import) makes a re-executed step N (attempt > 1) report another
loss: the determinism check must notice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kitchen.types import CompletedFuture, ForwardBackwardOutput, OptimStepResponse, SavedState

BURN_STEP = int(os.environ["BAKERY_BURN_STEP"]) if os.environ.get("BAKERY_BURN_STEP") else None


class Oven:
    def __init__(self, seed: int) -> None:
        self.weights = [0.25 * (seed + i + 1) for i in range(4)]
        self.grad = [0.0] * 4
        self.step = 0
        self.attempt = 1

    def forward_backward(self, batch: list[float], heat: float) -> CompletedFuture[Any]:
        loss = sum((w - x) ** 2 for w, x in zip(self.weights, batch, strict=True))
        self.grad = [2 * (w - x) for w, x in zip(self.weights, batch, strict=True)]
        if self.step == BURN_STEP and self.attempt > 1:
            loss += 1.0
        return CompletedFuture(ForwardBackwardOutput((), {"loss:sum": loss}))

    def optim_step(self, heat: float) -> CompletedFuture[OptimStepResponse]:
        self.weights = [w - heat * g for w, g in zip(self.weights, self.grad, strict=True)]
        self.step += 1
        return CompletedFuture(OptimStepResponse({}))

    def save_state(self, path: str | Path) -> CompletedFuture[SavedState]:
        body = {"weights": self.weights, "step": self.step}
        (Path(path) / "oven.json").write_text(json.dumps(body, sort_keys=True))
        return CompletedFuture(SavedState(str(path), self.step))

    def load_state(self, path: str | Path, with_optimizer: bool = True) -> CompletedFuture[Any]:
        body = json.loads((Path(path) / "oven.json").read_text())
        self.weights, self.step = list(body["weights"]), int(body["step"])
        return CompletedFuture(SavedState(str(path), self.step))

    def save_weights_for_sampler(self, path: str | Path) -> CompletedFuture[str]:
        (Path(path) / "loaf.json").write_text(json.dumps(self.weights))
        return CompletedFuture(str(path))

    def close(self) -> None:
        """Nothing to release."""


class OvenService:
    """The factory port: makes ovens."""

    def __init__(self) -> None:
        self.closed = False

    def create_lora_training_client(self, base_model: str, rank: int = 32, **kw: Any) -> Oven:
        return Oven(int(kw.get("seed") or 0))

    def verify_checkpoint(self, uri: str, sha256: str) -> bool:
        return False

    def describe(self) -> dict[str, str]:
        return {"backend": "oven"}

    def close(self) -> None:
        self.closed = True


def create_service(config: Any, home: Path) -> OvenService:
    return OvenService()
