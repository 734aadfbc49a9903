"""The promise of distillation: with an sl_basic run as teacher, both recipes' defaults close at
least half of the held-out gap between the fresh student and the teacher, and on-policy
distillation at least halves its reverse KL to the teacher.

`kitchen run sl_basic` (defaults) makes the teacher; then `kitchen run distill_on_policy` and
`kitchen run distill_off_policy` with `teacher_checkpoint=run:<id>` and nothing else. The
teacher's held-out accuracy is the one each run measured at its start, by the same greedy
exact-match evaluator on the same 64 problems (``teacher/accuracy``).
"""

from __future__ import annotations

from typing import Any

import pytest

from kitchen.testing.cli import Kitchen, make_kitchen
from kitchen.testing.runs import replay_json


def _gap_closed(state: dict[str, Any]) -> tuple[float, float, float, float]:
    evals = {int(k): v for k, v in state["eval_metrics"].items()}
    first, last = evals[min(evals)], evals[max(evals)]
    start, end, teacher = first["test/accuracy"], last["test/accuracy"], first["teacher/accuracy"]
    assert first["test/examples"] == first["teacher/examples"] == 64
    return (end - start) / (teacher - start), start, end, teacher


def _distill(kitchen: Kitchen, recipe: str) -> dict[str, Any]:
    r = kitchen("run", recipe, "teacher_checkpoint=run:teacher", "--run-id", recipe, timeout=1800)
    assert r.code == 0, r.stderr
    return dict(replay_json(kitchen, recipe)["state"])


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory: pytest.TempPathFactory) -> Kitchen:
    run = make_kitchen(tmp_path_factory.mktemp("distill") / "home")
    r = run("run", "sl_basic", "--run-id", "teacher", timeout=1800)
    assert r.code == 0, r.stderr
    return run


@pytest.mark.slow
def test_on_policy_halves_the_kl_and_closes_half_the_gap(kitchen: Kitchen) -> None:
    state = _distill(kitchen, "distill_on_policy")
    steps = {int(k): v for k, v in state["step_metrics"].items()}
    kl = [steps[s]["teacher_kl"] for s in sorted(steps)]
    assert sum(kl[-5:]) / 5 <= 0.5 * sum(kl[:5]) / 5, kl
    closed, start, end, teacher = _gap_closed(state)
    assert teacher > start, (start, teacher)
    assert closed >= 0.5, (start, end, teacher)


@pytest.mark.slow
def test_off_policy_closes_half_the_gap(kitchen: Kitchen) -> None:
    closed, start, end, teacher = _gap_closed(_distill(kitchen, "distill_off_policy"))
    assert teacher > start, (start, teacher)
    assert closed >= 0.5, (start, end, teacher)
