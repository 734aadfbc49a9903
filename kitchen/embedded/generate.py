"""Builds the embedded datasets from the task families, with fixed splits.

The held-out problems are drawn first, from their own seed, and every other draw (the
train splits of all three sets and the tiny model's pre-training text) excludes their questions;
so a test score measures generalisation, never recall. ``python -m kitchen.embedded.generate``
rewrites the shipped JSONL files; a test regenerates them and compares.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kitchen.embedded import ASSETS_DIR
from kitchen.embedded.tasks import (
    Problem,
    plain_text,
    problems_excluding,
    unique_problems,
    wrong_answer,
)

HELD_OUT_SEED = 1000
HELD_OUT_SIZE = 64
TRAIN_SIZES = {"chat": 2000, "prefs": 1000, "rl": 1000}
TRAIN_SEEDS = {"chat": 1001, "prefs": 1002, "rl": 1003}
PRETRAIN_SEED = 2000
PRETRAIN_LINES = 40_000
REJECTED_SEED = 3000

Row = dict[str, Any]


def held_out_problems() -> list[Problem]:
    """The test problems shared by all three sets; nothing else may contain them."""
    return unique_problems(random.Random(HELD_OUT_SEED), HELD_OUT_SIZE)


@functools.cache
def held_out_questions() -> frozenset[str]:
    return frozenset(p.question for p in held_out_problems())


def train_problems(kind: str) -> list[Problem]:
    rng = random.Random(TRAIN_SEEDS[kind])
    return unique_problems(rng, TRAIN_SIZES[kind], exclude=held_out_questions())


def pretraining_lines(count: int = PRETRAIN_LINES, seed: int = PRETRAIN_SEED) -> list[str]:
    """Plain-text lines (no chat format) for pre-training; never a held-out problem."""
    rng = random.Random(seed)
    return [plain_text(p, rng) for p in problems_excluding(rng, count, held_out_questions())]


def _user(problem: Problem) -> list[Row]:
    return [{"role": "user", "content": problem.question}]


def _assistant(text: str) -> list[Row]:
    return [{"role": "assistant", "content": text}]


def chat_row(problem: Problem, rng: random.Random) -> Row:
    return {"messages": _user(problem) + _assistant(problem.answer)}


def prefs_row(problem: Problem, rng: random.Random) -> Row:
    return {
        "prompt": _user(problem),
        "chosen": _assistant(problem.answer),
        "rejected": _assistant(wrong_answer(problem, rng)),
    }


def rl_row(problem: Problem, rng: random.Random) -> Row:
    return {"prompt": _user(problem), "answer": problem.answer}


ROW_BUILDERS: dict[str, Callable[[Problem, random.Random], Row]] = {
    "chat": chat_row,
    "prefs": prefs_row,
    "rl": rl_row,
}


def build_split(kind: str, split: str) -> list[Row]:
    """The rows of one set's split, the same on every machine."""
    problems = held_out_problems() if split == "test" else train_problems(kind)
    rng = random.Random(REJECTED_SEED + TRAIN_SEEDS[kind] + (split == "test"))
    return [ROW_BUILDERS[kind](p, rng) for p in problems]


def split_path(kind: str, split: str, root: Path = ASSETS_DIR) -> Path:
    return root / f"arith-{kind}.{split}.jsonl"


def to_jsonl(rows: list[Row]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def write_all(root: Path = ASSETS_DIR) -> list[Path]:
    written = []
    for kind in ROW_BUILDERS:
        for split in ("train", "test"):
            path = split_path(kind, split, root)
            path.write_text(to_jsonl(build_split(kind, split)), encoding="utf-8")
            written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all():
        print(written_path)
