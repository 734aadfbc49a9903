"""The embedded datasets by name: what the dataset adapter and the evaluator call.

Rows come from the JSONL files shipped in ``assets/`` (made by ``generate.py``), so loading
needs neither the network nor the generators. Row shapes follow public sets, so a user's own
JSONL in the same shape goes through the same code:

- ``kitchen/arith-chat``: ``{"messages": [user, assistant]}``
- ``kitchen/arith-prefs``: ``{"prompt": [user], "chosen": [assistant], "rejected": [assistant]}``
- ``kitchen/arith-rl``: ``{"prompt": [user], "answer": str}``
"""

from __future__ import annotations

import json
from typing import Any

from kitchen.embedded.generate import split_path
from kitchen.errors import NotFound

_KINDS = {"kitchen/arith-chat": "chat", "kitchen/arith-prefs": "prefs", "kitchen/arith-rl": "rl"}
SPLITS = ("train", "test")


def list_embedded() -> list[str]:
    """The names ``load_embedded`` accepts."""
    return list(_KINDS)


def _kind(name: str) -> str:
    if name not in _KINDS:
        known = ", ".join(_KINDS)
        raise NotFound(f"unknown embedded dataset {name!r}: use one of {known}")
    return _KINDS[name]


def load_embedded(name: str, split: str) -> list[dict[str, Any]]:
    """The rows of one split, in their fixed order (a fresh list each call)."""
    kind = _kind(name)
    if split not in SPLITS:
        raise NotFound(f"unknown split {split!r} of {name}: use one of {', '.join(SPLITS)}")
    text = split_path(kind, split).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line]


def expected_answer(name: str, row: dict[str, Any]) -> str:
    """The reference answer of a row of any embedded set."""
    kind = _kind(name)
    if kind == "chat":
        return str(row["messages"][-1]["content"])
    if kind == "prefs":
        return str(row["chosen"][-1]["content"])
    return str(row["answer"])


def check_answer(name: str, row: dict[str, Any], completion: str) -> bool:
    """Exact match after trimming surrounding whitespace: every task has one short answer."""
    return completion.strip() == expected_answer(name, row).strip()
