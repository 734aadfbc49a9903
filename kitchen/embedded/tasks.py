"""The task families behind every embedded dataset, as pure seeded functions.

Each family has exact, short answers that a model of a couple of million parameters can
learn on a CPU: adding two numbers below 100, reversing a short word, sorting a few digits.
A problem is written two ways: as a chat question (what the datasets ask) and as a plain
line (what the tiny model is pre-trained on), so fine-tuning has a skill to build on and
still has a new format to learn. Only ``random.Random`` is used, so every machine draws
the same problems.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

FAMILIES = ("add", "reverse", "sort")


@dataclass(frozen=True, slots=True)
class Problem:
    """One task instance. ``key`` identifies it across every format (for split checks)."""

    family: str
    key: str
    question: str
    answer: str
    plain: str


def _add(rng: random.Random) -> Problem:
    a, b = rng.randrange(100), rng.randrange(100)
    key, answer = f"{a} + {b}", str(a + b)
    return Problem("add", key, f"What is {key}?", answer, f"{key} = {answer}")


def _reverse(rng: random.Random) -> Problem:
    word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 6)))
    answer = word[::-1]
    return Problem("reverse", word, f"Reverse {word}.", answer, f"reverse {word} = {answer}")


def _sort(rng: random.Random) -> Problem:
    digits = "".join(rng.choice(string.digits) for _ in range(rng.randint(3, 6)))
    answer = "".join(sorted(digits))
    return Problem("sort", digits, f"Sort {digits}.", answer, f"sort {digits} = {answer}")


_SAMPLERS: dict[str, Callable[[random.Random], Problem]] = {
    "add": _add,
    "reverse": _reverse,
    "sort": _sort,
}


def sample_problem(rng: random.Random, family: str | None = None) -> Problem:
    """Draw an instance of ``family``, or of a family drawn uniformly when it is None."""
    return _SAMPLERS[family or rng.choice(FAMILIES)](rng)


def wrong_answer(problem: Problem, rng: random.Random) -> str:
    """A plausible but wrong answer, for the rejected side of a preference pair."""
    if problem.family == "add":
        right = int(problem.answer)
        candidates = [v for v in range(max(0, right - 10), right + 11) if v != right]
        return str(rng.choice(candidates))
    if problem.family == "reverse" and problem.key != problem.answer:
        return problem.key  # echoing the word is the typical mistake
    return _shuffle_until_different(problem.answer, rng)


def _shuffle_until_different(text: str, rng: random.Random) -> str:
    chars = list(text)
    if len(set(chars)) == 1:
        return text + text[0]  # every arrangement is the same; a longer one is wrong
    while "".join(chars) == text:
        rng.shuffle(chars)
    return "".join(chars)


def unique_problems(
    rng: random.Random, count: int, exclude: frozenset[str] = frozenset()
) -> list[Problem]:
    """``count`` problems with distinct keys, none in ``exclude``, families taken in turn.

    Taking families in turn keeps any prefix of the list balanced, so evaluating only the
    first rows of a split still covers every task.
    """
    seen = set(exclude)
    out: list[Problem] = []
    while len(out) < count:
        problem = sample_problem(rng, FAMILIES[len(out) % len(FAMILIES)])
        if problem.key not in seen:
            seen.add(problem.key)
            out.append(problem)
    return out


def problems_excluding(rng: random.Random, count: int, exclude: frozenset[str]) -> list[Problem]:
    """``count`` problems (repeats allowed) whose keys avoid ``exclude``: pre-training text."""
    out: list[Problem] = []
    while len(out) < count:
        problem = sample_problem(rng)
        if problem.key not in exclude:
            out.append(problem)
    return out
