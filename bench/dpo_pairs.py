"""What the DPO benchmarks share: the embedded pairs rendered as dpo_basic renders them, the
batch order dpo_basic takes, and held-out scoring from sequence log-probabilities.

Imported by ``bench/dpo.py`` (kitchen beside a hand-written loop) and ``bench/dpo_trl.py``
(TRL's DPOTrainer), so all three train on the same pairs in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kitchen.embedded import TINY_MODEL_DIR
from kitchen.embedded.datasets import load_embedded
from kitchen.types import Datum

MODEL = str(TINY_MODEL_DIR)
LORA_RANK = 16
LORA_ALPHA = 32
BETA = 0.1
BATCH_PAIRS = 32
ADAM = {"betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.0}


@dataclass(frozen=True)
class Pairs:
    train: list[tuple[Datum, Datum]]
    test: list[tuple[Datum, Datum]]
    train_rows: list[dict[str, Any]]
    test_rows: list[dict[str, Any]]


def load_pairs(max_length: int = 128) -> Pairs:
    from kitchen.adapters.local_torch.loading import load_tokenizer
    from kitchen.renderers import get_renderer
    from kitchen.workflows.preference.data import render_pair

    renderer = get_renderer("role_colon", load_tokenizer(MODEL))
    train_rows = load_embedded("kitchen/arith-prefs", "train")
    test_rows = load_embedded("kitchen/arith-prefs", "test")

    def render(rows: list[dict[str, Any]]) -> list[tuple[Datum, Datum]]:
        out = [render_pair(renderer, row, max_length) for row in rows]
        return [p for p in out if p is not None]

    return Pairs(render(train_rows), render(test_rows), train_rows, test_rows)


def batch_indices(n_pairs: int, steps: int, seed: int = 0) -> list[list[int]]:
    """dpo_basic's batches: a seeded shuffle per epoch, full batches only."""
    from kitchen.workflows.common.loop import epoch_order

    per_epoch = n_pairs // BATCH_PAIRS
    out = []
    for step in range(steps):
        epoch, b = divmod(step, per_epoch)
        order = epoch_order(n_pairs, seed, epoch)
        out.append(order[b * BATCH_PAIRS : (b + 1) * BATCH_PAIRS])
    return out


def lr_at(lr: float, step: int, total: int) -> float:
    """dpo_basic's linear decay to 0."""
    return lr * (1.0 - step / max(total, 1))


def scores(policy: Any, reference: Any) -> dict[str, float]:
    """Held-out accuracy (implicit reward of chosen above rejected) and the policy's own
    preference, from [pairs, 2] sequence log-probabilities (chosen, rejected)."""
    ratio = policy - reference
    return {
        "test/accuracy": float((ratio[:, 0] > ratio[:, 1]).float().mean()),
        "test/policy_prefers_chosen": float((policy[:, 0] > policy[:, 1]).float().mean()),
    }
