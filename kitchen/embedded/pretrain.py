"""Pre-training of the tiny model on plain task text: packing and a deterministic loop.

Nothing here may depend on the clock or on global random state: the same CPU type must
produce the same weights bit for bit, so the build can be checked by rebuilding.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True, slots=True)
class PretrainSettings:
    steps: int = 1500
    batch_size: int = 32
    seq_len: int = 64
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 2


def pack_rows(docs: Sequence[list[int]], seq_len: int, pad_id: int) -> list[list[int]]:
    """Concatenate whole documents into rows of ``seq_len`` tokens, padding each row's end.

    A document is never cut, so every answer is seen together with its question.
    """
    rows: list[list[int]] = []
    row: list[int] = []
    for doc in docs:
        if len(doc) > seq_len:
            raise ValueError(f"a pre-training document has {len(doc)} > {seq_len} tokens")
        if len(row) + len(doc) > seq_len:
            rows.append(row + [pad_id] * (seq_len - len(row)))
            row = []
        row += doc
    if row:
        rows.append(row + [pad_id] * (seq_len - len(row)))
    return rows


def lr_at(step: int, s: PretrainSettings) -> float:
    """Linear warm-up, then cosine decay to zero: the usual shape, and robust at high rates."""
    warm = min(1.0, (step + 1) / s.warmup_steps)
    return s.learning_rate * warm * 0.5 * (1.0 + math.cos(math.pi * step / s.steps))


def pretrain(
    model: torch.nn.Module, rows: list[list[int]], pad_id: int, s: PretrainSettings
) -> float:
    """Train ``model`` in place on random batches of ``rows``; returns the last loss."""
    import torch

    data = torch.tensor(rows, dtype=torch.long)
    generator = torch.Generator().manual_seed(s.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=s.learning_rate, betas=(0.9, 0.95), weight_decay=s.weight_decay
    )
    model.train()
    loss_value = math.nan
    for step in range(s.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, s)
        batch = data[torch.randint(0, len(data), (s.batch_size,), generator=generator)]
        loss = model(input_ids=batch, labels=batch.masked_fill(batch == pad_id, -100)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.item())
        if step % 100 == 0 or step == s.steps - 1:
            print(f"pre-train step {step}/{s.steps} loss {loss_value:.4f}", file=sys.stderr)
    model.eval()
    return loss_value
