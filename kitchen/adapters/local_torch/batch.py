"""Data in, tensors out: micro-batches of a call's data, each one right-padded batch, and back.

A call whose padded size (data × longest datum) fits ``max_tokens_per_microbatch`` runs as ONE
batch in the caller's order, exactly as it always did. A larger call is split by :func:`plan`:
the data sorted by length (longest first, ties by position), then cut greedily so that no
micro-batch holds more padded tokens than the budget (a datum longer than the budget goes
alone). The plan depends only on the lengths and the budget, so the same call always runs the
same micro-batches, and sorting by length keeps the padding small.

Within a batch, data are padded on the right (position ids stay 0..n-1) and an attention mask
hides the padding. The conversions are the hot path of a training loop: each field of every
datum is chained into one flat tensor and split, rather than converted row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

from kitchen.adapters.local_torch import head
from kitchen.errors import ConfigError
from kitchen.types import Datum, TensorData

if TYPE_CHECKING:  # pragma: no cover
    import torch

FLOAT_KEYS = frozenset({"weights", "logprobs", "advantages"})

DEFAULT_MAX_TOKENS_PER_MICROBATCH = 16384
"""Padded tokens per micro-batch unless told otherwise. Every default run stays one batch, as
it always was: their largest calls are bounded by sl_basic's 32 × 128 = 4,096, dpo_basic's
64 × 128 = 8,192 and distill_on_policy's 128 × (prompt + 16) padded tokens (measured: 1,632,
6,656 and 6,784). docs/backend.md says how to choose it for a real model."""


@dataclass(frozen=True, slots=True)
class Batch:
    """One padded batch. ``inputs`` holds each loss input as a [B, T] tensor, 0 in padding."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    lengths: tuple[int, ...]
    inputs: dict[str, torch.Tensor]

    @property
    def valid(self) -> torch.Tensor:
        return self.attention_mask.bool()


def lengths_of(data: Sequence[Datum]) -> list[int]:
    if not data:
        raise ConfigError("forward_backward needs at least one Datum: pass a non-empty list")
    lengths = [d.model_input.length for d in data]
    for i, n in enumerate(lengths):
        if n == 0:
            raise ConfigError(f"datum {i} has an empty model_input: drop it or give it tokens")
    return lengths


def plan(lengths: Sequence[int], budget: int | None) -> list[list[int]]:
    """The micro-batches of a call, as lists of positions in the caller's data.

    One batch in the caller's order when everything fits ``budget`` padded tokens (or there is
    no budget); otherwise groups cut from the data sorted longest first, each group's positions
    in ascending order.
    """
    n = len(lengths)
    if budget is None or n * max(lengths) <= budget:
        return [list(range(n))]
    groups: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in sorted(range(n), key=lambda i: (-lengths[i], i)):
        if current and (len(current) + 1) * width > budget:
            groups.append(sorted(current))
            current = []
        if not current:
            width = lengths[i]
        current.append(i)
    groups.append(sorted(current))
    return groups


def pack(
    data: Sequence[Datum],
    keys: Sequence[str],
    vocab_size: int,
    device: str,
    positions: Sequence[int] | None = None,
) -> Batch:
    """Pad ``data`` into one batch carrying the loss inputs named in ``keys``.

    ``positions``: each datum's place in the caller's list, for error messages (a micro-batch
    holds part of the call). Checks run on the CPU tensors, before the move to ``device``, so
    they never stall a GPU.
    """
    if not data:
        raise ConfigError("forward_backward needs at least one Datum: pass a non-empty list")
    where = list(positions) if positions is not None else list(range(len(data)))
    tokens = [d.model_input.to_ints() for d in data]
    lengths = tuple(len(t) for t in tokens)
    for i, n in zip(where, lengths, strict=True):
        if n == 0:
            raise ConfigError(f"datum {i} has an empty model_input: drop it or give it tokens")
    inputs = {
        key: _pad(_field(data, key, lengths, where), lengths, key in FLOAT_KEYS) for key in keys
    }
    flat_ids = list(chain.from_iterable(tokens))
    ids = _pad(flat_ids, lengths, False)
    mask = _pad([1] * len(flat_ids), lengths, False)
    _check_vocab(ids, "model_input", vocab_size)
    if "target_tokens" in inputs:
        _check_vocab(inputs["target_tokens"], "target_tokens", vocab_size)
    moved = {key: value.to(device) for key, value in inputs.items()}
    return Batch(ids.to(device), mask.to(device), lengths, moved)


def _check_vocab(ids: torch.Tensor, name: str, vocab_size: int) -> None:
    """Refuse token ids the model has no embedding for, before they fail deep inside torch."""
    if int(ids.max()) >= vocab_size or int(ids.min()) < 0:
        raise ConfigError(
            f"{name} holds token ids outside the model's vocabulary [0, {vocab_size}): "
            "encode the data with this model's tokenizer"
        )


def _field(
    data: Sequence[Datum], key: str, lengths: tuple[int, ...], where: Sequence[int]
) -> list[float] | list[int]:
    flat: list[float] | list[int] = []
    for i, datum, n in zip(where, data, lengths, strict=True):
        value = datum.loss_fn_inputs.get(key)
        if value is None:
            raise ConfigError(f"datum {i} lacks loss_fn_inputs[{key!r}], which this loss needs")
        if len(value.data) != n:
            raise ConfigError(
                f"datum {i}: loss_fn_inputs[{key!r}] has {len(value.data)} values for {n} input "
                "tokens: give one value per input token"
            )
        flat.extend(value.data)  # type: ignore[arg-type]
    return flat


def _pad(flat: list[float] | list[int], lengths: tuple[int, ...], floating: bool) -> torch.Tensor:
    import torch
    from torch.nn.utils.rnn import pad_sequence

    values = torch.tensor(flat, dtype=torch.float32 if floating else torch.int64)
    rows = values.split(list(lengths))
    return pad_sequence(list(rows), batch_first=True)


def target_logprobs(model: torch.nn.Module, batch: Batch, vocab_size: int) -> torch.Tensor:
    """log p(target_i | tokens_<=i) for every position, [B, T], 0 in the padding.

    A batch whose logits would be large goes through the output head in chunks of positions
    (``head``); a small one keeps the model's own logits, bit for bit as it always did.
    """
    import torch
    import torch.nn.functional as F

    targets = batch.inputs["target_tokens"]
    chunked = head.head_of(model)
    if chunked is None or not head.wants_chunks(targets.numel(), vocab_size):
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
        return (-nll).view_as(targets).masked_fill(~batch.valid, 0.0)
    hidden = head.hidden_states(chunked, batch.input_ids, batch.attention_mask)
    valid = batch.valid
    picked = head.target_logprobs(chunked, hidden[valid], targets[valid])
    return torch.zeros(targets.shape, dtype=torch.float32, device=picked.device).masked_scatter(
        valid, picked
    )


def per_datum(logprobs: torch.Tensor, lengths: Sequence[int]) -> list[torch.Tensor]:
    """Each datum's own positions, as views that keep the autograd graph."""
    return [row[:n] for row, n in zip(logprobs, lengths, strict=True)]


def to_outputs(logprobs: torch.Tensor, lengths: Sequence[int]) -> tuple[dict[str, TensorData], ...]:
    rows = logprobs.detach().to("cpu").tolist()
    return tuple(
        {"logprobs": TensorData(tuple(row[:n]), "float32", (n,))}
        for row, n in zip(rows, lengths, strict=True)
    )
