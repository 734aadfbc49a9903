"""On-policy distillation's advantages and datum, against values worked out by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kitchen.types import CompletedFuture, ModelInput
from kitchen.workflows.distillation.kl import (
    completion_logprobs,
    reverse_kl_advantages,
)
from kitchen.workflows.rl.data import transition_datum
from kitchen.workflows.rl.env import Trajectory, TrajectoryGroup, Transition
from kitchen.workflows.rl.resources import StepBatch

TOL = 1e-6


def test_reverse_kl_advantages_by_hand() -> None:
    student = [-0.5, -2.0, -0.1, -3.25]
    teacher = [-1.5, -0.25, -0.1, -4.0]
    # −1.0 · (s − t): (−0.5 + 1.5) = 1.0 → −1.0; (−2.0 + 0.25) = −1.75 → 1.75;
    # equal → 0; (−3.25 + 4.0) = 0.75 → −0.75.
    expected = [-1.0, 1.75, 0.0, -0.75]
    got = reverse_kl_advantages(student, teacher, 1.0)
    assert all(abs(g - e) <= TOL for g, e in zip(got, expected, strict=True)), got
    # coef 0.5 halves every advantage.
    halved = reverse_kl_advantages(student, teacher, 0.5)
    assert all(abs(g - e / 2) <= TOL for g, e in zip(halved, expected, strict=True)), halved


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="3 student log-probs for 2 teacher ones"):
        reverse_kl_advantages([-1.0, -1.0, -1.0], [-1.0, -1.0], 1.0)


def test_the_completions_logprobs_are_the_entries_after_the_prompt() -> None:
    # compute_logprobs over 3 prompt tokens + 2 completion tokens: None, then 4 values.
    lps = [None, -1.0, -2.0, -0.7, -0.2]
    assert completion_logprobs(lps, 3) == [-0.7, -0.2]


def test_the_datum_carries_the_sampler_logprobs_and_per_token_advantages() -> None:
    t = Transition(
        ob=ModelInput.from_ints([5, 6, 7]),
        tokens=(8, 9),
        logprobs=(-0.5, -2.0),
        reward=0.0,
        episode_done=True,
    )
    advantages = reverse_kl_advantages(t.logprobs, [-1.5, -0.25], 1.0)  # [-1.0, 1.75]
    datum, mask = transition_datum(t, advantages)
    assert datum.model_input.to_ints() == [5, 6, 7, 8]
    assert datum.loss_fn_inputs["target_tokens"].tolist() == [6, 7, 8, 9]
    assert datum.loss_fn_inputs["logprobs"].tolist() == [0.0, 0.0, -0.5, -2.0]
    got = datum.loss_fn_inputs["advantages"].tolist()
    assert all(abs(g - e) <= TOL for g, e in zip(got, [0.0, 0.0, -1.0, 1.75], strict=True))
    assert mask == [0.0, 0.0, 1.0, 1.0]


class _Teacher:
    """Scores every sequence with fixed log-probs: None, then one per later token."""

    def __init__(self, by_length: dict[int, list[float | None]]) -> None:
        self.by_length = by_length
        self.asked: list[list[int]] = []

    def compute_logprobs(self, prompt: ModelInput) -> CompletedFuture[list[float | None]]:
        tokens = prompt.to_ints()
        self.asked.append(tokens)
        return CompletedFuture(self.by_length[len(tokens)])


def test_the_stage_scores_the_sampled_tokens_and_logs_teacher_kl() -> None:
    from kitchen.workflows.distillation.stages import compute_advantages

    ob = ModelInput.from_ints([1, 2])
    a = Transition(ob, (3, 4), (-0.5, -2.0), 1.0, True, {"correct": 1.0})
    b = Transition(ob, (5,), (-1.0,), 0.0, True, {"correct": 0.0})
    group = TrajectoryGroup(
        trajectories=(Trajectory((a,)), Trajectory((b,))),
        final_rewards=(0.0, 0.0),
        metrics=({}, {}),
    )
    teacher = _Teacher({4: [None, -9.0, -1.5, -0.25], 3: [None, -9.0, -3.0]})
    resources = SimpleNamespace(batch=StepBatch(step=0, groups=[group]), teacher=teacher)
    config = SimpleNamespace(kl_penalty_coef=1.0, loss_aggregation="sum", max_tokens=8)
    ctx = SimpleNamespace(config=config, resources=resources)
    compute_advantages.run(ctx)  # type: ignore[arg-type]
    assert teacher.asked == [[1, 2, 3, 4], [1, 2, 5]]
    # per-token s − t: (−0.5 + 1.5) = 1.0, (−2.0 + 0.25) = −1.75, (−1.0 + 3.0) = 2.0
    assert abs(resources.batch.metrics["teacher_kl"] - (1.0 - 1.75 + 2.0) / 3) <= TOL
    advs = [d.loss_fn_inputs["advantages"].tolist() for d in resources.batch.data]
    assert all(abs(g - e) <= TOL for g, e in zip(advs[0], [0.0, -1.0, 1.75], strict=True))
    assert all(abs(g - e) <= TOL for g, e in zip(advs[1], [0.0, -2.0], strict=True))
    assert resources.batch.masks == [[0.0, 1.0, 1.0], [0.0, 1.0]]
