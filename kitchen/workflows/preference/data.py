"""The preference workflow's rows and how a pair becomes two data.

A row is ``{"prompt": [messages], "chosen": [messages], "rejected": [messages]}`` (the shape
of tinker-cookbook's and TRL's conversational preference sets). Both completions are rendered
after the *same* prompt by the recipe's renderer, with loss weight on the completion's last
assistant message only, so the two sequence log-probabilities compare like with like.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kitchen.errors import ConfigError
from kitchen.renderers import Renderer, TrainOnWhat, datum_from_model_input_weights
from kitchen.types import Datum

COLUMNS = ("prompt", "chosen", "rejected")


def _messages(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in value
    )


def _why_bad(row: Mapping[str, Any]) -> str | None:
    if not _messages(row.get("prompt")):
        return "'prompt' must be a list of {'role': str, 'content': str}"
    for key in ("chosen", "rejected"):
        value = row.get(key)
        if value is None:
            return f"it has no {key!r}"
        if not _messages(value) or not value:
            return f"{key!r} must be a non-empty list of {{'role': str, 'content': str}}"
        if value[-1]["role"] != "assistant" or not value[-1]["content"].strip():
            return f"{key!r} must end with a non-empty assistant message"
    return None


def check_pair_row(source: str, index: int, row: Mapping[str, Any]) -> None:
    """Refuse a malformed pair before the run exists, naming the source and the row."""
    why = _why_bad(row)
    if why is not None:
        raise ConfigError(f"{source}: row {index}: {why}; fix or drop that row")


def render_pair(
    renderer: Renderer, row: Mapping[str, Any], max_length: int
) -> tuple[Datum, Datum] | None:
    """(chosen, rejected) as next-token data; None when truncation leaves a completion empty."""
    out = []
    for key in ("chosen", "rejected"):
        mi, weights = renderer.build_supervised_example(
            [*row["prompt"], *row[key]], TrainOnWhat.LAST_ASSISTANT_MESSAGE
        )
        datum = datum_from_model_input_weights(mi, weights, max_length)
        if not any(datum.loss_fn_inputs["weights"].data):
            return None
        out.append(datum)
    return out[0], out[1]
