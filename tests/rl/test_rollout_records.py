"""The rollouts blob, the data built from it, the step metrics and the seeds: by hand."""

from __future__ import annotations

import struct

import pytest

from kitchen.types import ModelInput
from kitchen.workflows.rl import codec
from kitchen.workflows.rl.data import assemble, transition_datum
from kitchen.workflows.rl.env import Trajectory, TrajectoryGroup, Transition
from kitchen.workflows.rl.metrics import by_group, env_metrics, kl_metrics
from kitchen.workflows.rl.rollout import group_seed


def f32(x: float) -> float:
    """x rounded to float32, as a sampler reports it."""
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def t(ob: list[int], tokens: list[int], lps: list[float], reward: float) -> Transition:
    return Transition(
        ModelInput.from_ints(ob),
        tuple(tokens),
        tuple(f32(x) for x in lps),
        reward,
        True,
        {"correct": float(reward > 0.5)},
    )


def groups() -> list[TrajectoryGroup]:
    a = Trajectory((t([1, 4, 5], [7, 2], [-0.1, -0.2], 1.0),))
    b = Trajectory((t([1, 4, 5], [8, 9, 2], [-1.3, -0.7, -0.01], -0.1),))
    c = Trajectory((t([1, 6], [3], [-2.25], 0.0),))
    return [
        TrajectoryGroup((a, b), (0.0, 0.0), ({}, {}), seed=2**62 + 3, tags=("arith",)),
        TrajectoryGroup((c, c), (0.0, 0.0), ({}, {}), seed=5, tags=("arith",)),
    ]


def test_blob_round_trips_losslessly_and_deterministically() -> None:
    blob = codec.encode(7, groups())
    step, back = codec.decode(blob)
    assert step == 7 and back == groups()
    assert codec.encode(7, back) == blob  # same groups, same bytes
    assert back[0].trajectories[0].transitions[0].logprobs == (f32(-0.1), f32(-0.2))


def test_blob_of_another_format_is_refused() -> None:
    with pytest.raises(ValueError, match="not a rollouts blob"):
        codec.decode(b'{"format": "other"}')


def test_datum_is_shifted_with_advantages_on_completion_tokens_only() -> None:
    tr = t([1, 4, 5], [7, 2], [-0.1, -0.2], 1.0)
    datum, mask = transition_datum(tr, 0.5)
    assert datum.model_input.to_ints() == [1, 4, 5, 7]
    assert list(datum.loss_fn_inputs["target_tokens"].data) == [4, 5, 7, 2]
    assert list(datum.loss_fn_inputs["logprobs"].data) == [0.0, 0.0, f32(-0.1), f32(-0.2)]
    assert list(datum.loss_fn_inputs["advantages"].data) == [0.0, 0.0, 0.5, 0.5]
    assert mask == [0.0, 0.0, 1.0, 1.0]


def test_assemble_gives_one_datum_per_trajectory_in_order() -> None:
    data, masks = assemble(groups(), [[0.55, -0.55], [0.0, 0.0]])
    assert [list(d.loss_fn_inputs["advantages"].data)[-1] for d in data] == [
        pytest.approx(0.55),
        pytest.approx(-0.55),
        0.0,
        0.0,
    ]
    assert [sum(m) for m in masks] == [2.0, 3.0, 1.0, 1.0]


def test_env_metrics_by_hand() -> None:
    m = env_metrics(groups())
    # rewards 1, -0.1, 0, 0 → mean 0.225; correct 1, 0, 0, 0 → 0.25
    assert m["env/all/reward/total"] == pytest.approx(0.225)
    assert m["env/all/correct"] == pytest.approx(0.25)
    # completion tokens 2 + 3 + 1 + 1 = 7 over 4 turns; prompt tokens 3 + 3 + 2 + 2 = 10
    assert m["env/all/total_ac_tokens"] == 7.0 and m["env/all/ac_tokens_per_turn"] == 1.75
    assert m["env/all/total_ob_tokens"] == 10.0 and m["env/all/total_episodes"] == 4.0
    # group 1 mixed; group 2 all 0 → all bad
    assert m["env/all/by_group/frac_mixed"] == 0.5
    assert m["env/all/by_group/frac_all_bad"] == 0.5
    assert m["env/all/by_group/frac_all_good"] == 0.0


def test_all_good_needs_equal_rewards_of_at_least_half() -> None:
    good = TrajectoryGroup(groups()[0].trajectories[:1] * 2, (0.0, 0.0), ({}, {}))
    assert by_group([good])["env/all/by_group/frac_all_good"] == 1.0


def test_kl_and_entropy_over_masked_tokens_by_hand() -> None:
    from kitchen.types import TensorData

    sampled = [TensorData.from_list([0.0, -1.0, -2.0], "float32")]
    trained = [TensorData.from_list([-9.0, -1.5, -1.0], "float32")]
    m = kl_metrics(sampled, trained, [[0.0, 1.0, 1.0]])
    # differences q - p on the two masked-in tokens: 0.5 and -1.0
    assert m["optim/kl_sample_train_v1"] == pytest.approx(-0.25)
    assert m["optim/kl_sample_train_v2"] == pytest.approx(0.5 * (0.25 + 1.0) / 2)
    assert m["optim/entropy"] == pytest.approx(1.5)


def test_group_seeds_are_a_pure_function_of_seed_step_and_group() -> None:
    assert group_seed(0, 3, 1) == group_seed(0, 3, 1)
    seeds = {group_seed(s, step, g) for s in (0, 1) for step in range(5) for g in range(8)}
    assert len(seeds) == 80
    assert all(0 <= x < 2**63 for x in seeds)
