"""From trajectory groups to training data, and the rows the RL workflow accepts.

A datum is tinker's RL datum: ``model_input`` is the prompt and completion without its last
token, ``target_tokens`` the same shifted by one; ``logprobs`` holds the sampler's log-probs
and ``advantages`` the trajectory's advantage on completion positions, zeros on the prompt (so
the summed loss sees completion tokens only). The mask of completion positions stays with the
caller, for the KL and entropy metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kitchen.errors import ConfigError
from kitchen.types import Datum, ModelInput, TensorData
from kitchen.workflows.common.data import check_chat
from kitchen.workflows.rl.env import TrajectoryGroup, Transition


def transition_datum(
    t: Transition, advantage: float | Sequence[float]
) -> tuple[Datum, list[float]]:
    """One turn as a datum, and its completion mask (1.0 where a sampled token is predicted).

    ``advantage`` is one number for every completion token (RL's group-relative advantage) or
    one per completion token (distillation's per-token reverse KL)."""
    ob = t.ob.to_ints()
    tokens = ob + list(t.tokens)
    pad = len(ob) - 1
    mask = [0.0] * pad + [1.0] * len(t.tokens)
    if isinstance(advantage, int | float):
        per_token = [advantage * m for m in mask]
    else:
        per_token = [0.0] * pad + list(advantage)
    datum = Datum(
        model_input=ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": TensorData.from_list(tokens[1:], "int64"),
            "logprobs": TensorData.from_list([0.0] * pad + list(t.logprobs), "float32"),
            "advantages": TensorData.from_list(per_token, "float32"),
        },
    )
    return datum, mask


def assemble(
    groups: Sequence[TrajectoryGroup], advantages: Sequence[Sequence[float]]
) -> tuple[list[Datum], list[list[float]]]:
    data: list[Datum] = []
    masks: list[list[float]] = []
    for group, advs in zip(groups, advantages, strict=True):
        for trajectory, adv in zip(group.trajectories, advs, strict=True):
            for t in trajectory.transitions:
                datum, mask = transition_datum(t, adv)
                data.append(datum)
                masks.append(mask)
    return data, masks


def check_prompt_row(source: str, index: int, row: Mapping[str, Any]) -> None:
    check_chat(source, index, row, "prompt")
    if "answer" in row and not isinstance(row["answer"], str | int | float):
        raise ConfigError(f"{source}: row {index}: 'answer' must be a string; fix that row")
