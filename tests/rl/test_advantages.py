"""Group-relative advantages and constant-group removal, on small lists worked out by hand."""

from __future__ import annotations

from kitchen.types import ModelInput
from kitchen.workflows.rl.advantages import (
    compute_advantages,
    group_advantages,
    remove_constant_reward_groups,
)
from kitchen.workflows.rl.env import Trajectory, TrajectoryGroup, Transition

TOL = 1e-6


def close(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(abs(g - w) <= TOL for g, w in zip(got, want, strict=True))


def group(*rewards: float, final: tuple[float, ...] = ()) -> TrajectoryGroup:
    trajectories = tuple(
        Trajectory((Transition(ModelInput.from_ints([1]), (2,), (-0.5,), r, True),))
        for r in rewards
    )
    finals = final or (0.0,) * len(rewards)
    return TrajectoryGroup(trajectories, finals, tuple({} for _ in rewards))


def test_reward_minus_the_group_mean() -> None:
    # mean 0.5
    assert close(group_advantages([1.0, 0.0, 0.0, 1.0]), [0.5, -0.5, -0.5, 0.5])
    # mean 0.25
    assert close(group_advantages([1.0, 0.0, 0.0, 0.0]), [0.75, -0.25, -0.25, -0.25])
    # format term: rewards 1, -0.1, 0 → mean 0.3
    assert close(group_advantages([1.0, -0.1, 0.0]), [0.7, -0.4, -0.3])
    assert close(group_advantages([0.0, 0.0]), [0.0, 0.0])


def test_division_by_the_group_std_when_asked() -> None:
    # rewards 1, 0, 0, 1: centred ±0.5; sample std sqrt(4·0.25/3) = 0.5773503; + 1e-4
    # 0.5 / 0.5774503 = 0.8658754
    assert close(
        group_advantages([1.0, 0.0, 0.0, 1.0], by_std=True),
        [0.8658754, -0.8658754, -0.8658754, 0.8658754],
    )
    # constant group: std 0, advantages stay 0
    assert close(group_advantages([1.0, 1.0], by_std=True), [0.0, 0.0])


def test_group_rewards_are_added_to_the_env_rewards() -> None:
    # totals 1 + 0.5 = 1.5 and 0 + 0 = 0: mean 0.75
    assert close(compute_advantages([group(1.0, 0.0, final=(0.5, 0.0))])[0], [0.75, -0.75])


def test_constant_groups_are_dropped_but_never_all() -> None:
    mixed, good, bad = group(1.0, 0.0), group(1.0, 1.0), group(0.0, 0.0)
    assert remove_constant_reward_groups([good, mixed, bad]) == [mixed]
    assert remove_constant_reward_groups([good, bad]) == [good]


def test_loss_aggregation_scales_by_hand() -> None:
    """Three sequences of 2, 4 and 1 completion tokens (7 in all), max_tokens 8."""
    from kitchen.workflows.rl.advantages import aggregation_scales

    masks = [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0, 1.0, 1.0], [0.0, 1.0]]
    assert close(aggregation_scales(masks, "sum", 8), [1.0, 1.0, 1.0])
    assert close(aggregation_scales(masks, "dapo", 8), [1 / 7, 1 / 7, 1 / 7])
    assert close(aggregation_scales(masks, "grpo", 8), [1 / 6, 1 / 12, 1 / 3])
    assert close(aggregation_scales(masks, "dr_grpo", 8), [1 / 24, 1 / 24, 1 / 24])


def test_aggregation_goes_through_the_advantages_only() -> None:
    """The summed loss over scaled advantages is the aggregated loss: each datum keeps its
    tokens and sampler log-probs, and ``sum`` hands the very same data back."""
    from kitchen.workflows.rl.advantages import aggregate
    from kitchen.workflows.rl.data import assemble

    groups = [group(1.0, 0.0)]
    data, masks = assemble(groups, compute_advantages(groups))
    assert aggregate(data, masks, "sum", 8) == data
    (first, second) = aggregate(data, masks, "grpo", 8)
    # one completion token each, two sequences: advantages ±0.5 over 2 · 1
    assert list(first.loss_fn_inputs["advantages"].data) == [0.25]
    assert list(second.loss_fn_inputs["advantages"].data) == [-0.25]
    assert first.model_input == data[0].model_input
    assert first.loss_fn_inputs["logprobs"] == data[0].loss_fn_inputs["logprobs"]
