"""Data in, tensors out: packing a list of Datum into one right-padded batch, and back.

Every forward_backward call runs ONE forward over all its data, whatever their lengths, so
the batch is padded on the right (position ids stay 0..n-1) and an attention mask hides the
padding. The conversions are the hot path of a training loop: each field of every datum is
chained into one flat tensor and split, rather than converted row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

from kitchen.errors import ConfigError
from kitchen.types import Datum, TensorData

if TYPE_CHECKING:  # pragma: no cover
    import torch

FLOAT_KEYS = frozenset({"weights", "logprobs", "advantages"})


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


def pack(data: Sequence[Datum], keys: Sequence[str], vocab_size: int, device: str) -> Batch:
    """Pad ``data`` into one batch carrying the loss inputs named in ``keys``.

    Checks run on the CPU tensors, before the move to ``device``, so they never stall a GPU.
    """
    if not data:
        raise ConfigError("forward_backward needs at least one Datum: pass a non-empty list")
    tokens = [d.model_input.to_ints() for d in data]
    lengths = tuple(len(t) for t in tokens)
    for i, n in enumerate(lengths):
        if n == 0:
            raise ConfigError(f"datum {i} has an empty model_input: drop it or give it tokens")
    inputs = {key: _pad(_field(data, key, lengths), lengths, key in FLOAT_KEYS) for key in keys}
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


def _field(data: Sequence[Datum], key: str, lengths: tuple[int, ...]) -> list[float] | list[int]:
    flat: list[float] | list[int] = []
    for i, (datum, n) in enumerate(zip(data, lengths, strict=True)):
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


def target_logprobs(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """log p(target_i | tokens_<=i) for every position, [B, T], 0 in the padding."""
    import torch.nn.functional as F

    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    targets = batch.inputs["target_tokens"]
    nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
    return (-nll).view_as(targets).masked_fill(~batch.valid, 0.0)


def per_datum(logprobs: torch.Tensor, lengths: Sequence[int]) -> list[torch.Tensor]:
    """Each datum's own positions, as views that keep the autograd graph."""
    return [row[:n] for row, n in zip(logprobs, lengths, strict=True)]


def to_outputs(logprobs: torch.Tensor, lengths: Sequence[int]) -> tuple[dict[str, TensorData], ...]:
    rows = logprobs.detach().to("cpu").tolist()
    return tuple(
        {"logprobs": TensorData(tuple(row[:n]), "float32", (n,))}
        for row, n in zip(rows, lengths, strict=True)
    )
