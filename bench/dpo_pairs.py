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
BETA = 0.3  # dpo_basic's defaults: β 0.3, lr 5e-3, 60 steps of 32 pairs
LEARNING_RATE = 5e-3
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


def pad(data: list[Datum]) -> tuple[Any, Any, Any, Any]:
    """input ids, attention mask, targets and weights of ``data``, right-padded."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    def rows(values: list[list[float]] | list[list[int]], dtype: Any) -> Any:
        return pad_sequence([torch.tensor(v, dtype=dtype) for v in values], batch_first=True)

    ids = rows([d.model_input.to_ints() for d in data], torch.long)
    mask = rows([[1] * d.model_input.length for d in data], torch.long)
    targets = rows([list(d.loss_fn_inputs["target_tokens"].data) for d in data], torch.long)
    weights = rows([list(d.loss_fn_inputs["weights"].data) for d in data], torch.float32)
    return ids, mask, targets, weights


def pair_sums(model: Any, pairs: list[tuple[Datum, Datum]]) -> Any:
    """[pairs, 2] sequence log-probabilities under a plain HF/peft ``model`` (keeps gradients
    when called with them on)."""
    import torch

    out = []
    for start in range(0, len(pairs), 64):
        data = [d for pair in pairs[start : start + 64] for d in pair]
        ids, mask, targets, weights = pad(data)
        logits = model(input_ids=ids, attention_mask=mask).logits
        logp = logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        out.append((logp * weights).sum(-1).view(-1, 2))
    return torch.cat(out)
