"""The built-in losses on hand-made logprobs, against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from kitchen.adapters.local_torch.losses import builtin, cross_entropy, importance_sampling, ppo
from kitchen.errors import ConfigError


def t(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(list(rows), dtype=torch.float32)


def test_cross_entropy_is_the_weighted_sum_of_negative_logprobs() -> None:
    # -(1·-1 + 0·-2 + 2·-0.5) = 2
    loss = cross_entropy(t([-1.0, -2.0, -0.5]), {"weights": t([1.0, 0.0, 2.0])}, {})
    assert loss.item() == pytest.approx(2.0)


def test_importance_sampling_weights_advantages_by_the_ratio() -> None:
    # ratios 1 and 2; -(1·1 + 2·-1) = 1
    inputs = {"logprobs": t([-1.0, -2.0 - math.log(2.0)]), "advantages": t([1.0, -1.0])}
    assert importance_sampling(t([-1.0, -2.0]), inputs, {}).item() == pytest.approx(1.0)


def test_ppo_takes_the_pessimistic_side_of_the_clip() -> None:
    # ratios 1, 2, 0.5 with advantages 1, 1, -1 and bounds 0.8 / 1.2:
    # min(1, 1) + min(2, 1.2) + min(-0.5, -0.8) = 1 + 1.2 - 0.8 = 1.4
    current = t([-1.0, -1.0, -1.0])
    inputs = {
        "logprobs": t([-1.0, -1.0 - math.log(2.0), -1.0 + math.log(2.0)]),
        "advantages": t([1.0, 1.0, -1.0]),
    }
    assert ppo(current, inputs, {}).item() == pytest.approx(-1.4, rel=1e-6)
    # wider bounds 0.4 / 2.5 leave every ratio unclipped: -(1 + 2 - 0.5) = -2.5
    wide = {"clip_low_threshold": 0.4, "clip_high_threshold": 2.5}
    assert ppo(current, inputs, wide).item() == pytest.approx(-2.5, rel=1e-6)


def test_unknown_loss_and_unknown_config_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown loss_fn 'dpo'"):
        builtin("dpo", None)
    with pytest.raises(ConfigError, match="clip_epsilon"):
        builtin("ppo", {"clip_epsilon": 0.2})
    with pytest.raises(ConfigError, match="allowed: none"):
        builtin("cross_entropy", {"clip_low_threshold": 0.9})
