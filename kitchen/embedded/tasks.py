"""The task families behind every embedded dataset, as pure seeded functions.

Each family has one exact, short, numeric answer that a model of about two million
parameters learns on a CPU in minutes: adding a digit to a number below 100, sorting a few
digits, counting the letters of a word, finding the largest digit. (Copying and reversing
words were tried and dropped: after the same pre-training the tiny model got none of the
held-out ones right, because it needs exact positional attention that takes far longer to
form.) A problem is a chat question with its answer; ``plain_text`` writes it the way the
tiny model sees it in pre-training, never in the chat format, so fine-tuning has a skill to
build on and a new format to learn. Only ``random.Random`` is used, so every machine draws
the same problems.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

FAMILIES = ("add", "sort", "count", "max")


@dataclass(frozen=True, slots=True)
class Problem:
    """One task instance; the question text is its identity across splits."""

    family: str
    question: str
    answer: str


def _digits(rng: random.Random) -> str:
    return "".join(rng.choice(string.digits) for _ in range(rng.randint(3, 6)))


def _add(rng: random.Random) -> Problem:
    a, b = rng.randrange(100), rng.randrange(10)
    return Problem("add", f"What is {a} + {b}?", str(a + b))


def _sort(rng: random.Random) -> Problem:
    digits = _digits(rng)
    return Problem("sort", f"Sort {digits}.", "".join(sorted(digits)))


def _count(rng: random.Random) -> Problem:
    word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
    return Problem("count", f"How many letters in {word}?", str(len(word)))


def _max(rng: random.Random) -> Problem:
    digits = _digits(rng)
    return Problem("max", f"Largest digit of {digits}?", max(digits))


_SAMPLERS: dict[str, Callable[[random.Random], Problem]] = {
    "add": _add,
    "sort": _sort,
    "count": _count,
    "max": _max,
}

PLAIN_FORMS = (
    "{q} {a}",
    "Q: {q}\nA: {a}",
    "Question: {q}\n\nAnswer: {a}",
)
"""How a problem reads in pre-training text: a few plain layouts, none of them the chat
format, so the skill does not hang on one separator and fine-tuning moves it to the chat
layout within a hundred steps."""


def plain_text(problem: Problem, rng: random.Random) -> str:
    return rng.choice(PLAIN_FORMS).format(q=problem.question, a=problem.answer)


def sample_problem(rng: random.Random, family: str | None = None) -> Problem:
    """Draw an instance of ``family``, or of a family drawn uniformly when it is None."""
    return _SAMPLERS[family or rng.choice(FAMILIES)](rng)


def wrong_answer(problem: Problem, rng: random.Random) -> str:
    """A plausible but wrong answer, for the rejected side of a preference pair."""
    right = problem.answer
    if problem.family in ("add", "count"):
        near = range(max(0, int(right) - 3), int(right) + 4)
        return str(rng.choice([v for v in near if v != int(right)]))
    if problem.family == "max":
        return rng.choice([d for d in string.digits if d != right])
    chars = list(right)
    if len(set(chars)) == 1:
        return right + right[0]  # every order reads the same; a longer one is wrong
    while "".join(chars) == right:
        rng.shuffle(chars)
    return "".join(chars)


def unique_problems(
    rng: random.Random, count: int, exclude: frozenset[str] = frozenset()
) -> list[Problem]:
    """``count`` problems with distinct questions, none in ``exclude``, families in turn.

    Taking families in turn keeps any prefix of the list balanced, so evaluating only the
    first rows of a split still covers every task.
    """
    seen = set(exclude)
    out: list[Problem] = []
    while len(out) < count:
        problem = sample_problem(rng, FAMILIES[len(out) % len(FAMILIES)])
        if problem.question not in seen:
            seen.add(problem.question)
            out.append(problem)
    return out


def problems_excluding(rng: random.Random, count: int, exclude: frozenset[str]) -> list[Problem]:
    """``count`` problems (repeats allowed) whose questions avoid ``exclude``."""
    out: list[Problem] = []
    while len(out) < count:
        problem = sample_problem(rng)
        if problem.question not in exclude:
            out.append(problem)
    return out
