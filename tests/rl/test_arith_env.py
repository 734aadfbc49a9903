"""The embedded arithmetic env: reward, format term, batches as a pure function of the index."""

from __future__ import annotations

from typing import Any

import pytest

from kitchen.workflows.rl.arith import make_env
from kitchen.workflows.rl.config import RLConfig
from kitchen.workflows.rl.env import EnvSetup


class CharRenderer:
    """A stand-in renderer: one token per character, 0 is the stop token."""

    def build_generation_prompt(self, messages: Any) -> Any:
        from kitchen.types import ModelInput

        return ModelInput.from_ints([ord(c) for c in messages[-1]["content"]])

    def get_stop_sequences(self) -> list[int]:
        return [0]

    def parse_response(self, tokens: Any) -> tuple[dict[str, str], bool]:
        done = 0 in tokens
        body = tokens[: tokens.index(0)] if done else tokens
        return {"role": "assistant", "content": "".join(chr(x) for x in body)}, done

    def build_supervised_example(self, *a: Any, **k: Any) -> Any:
        raise NotImplementedError


ROWS = [{"prompt": [{"role": "user", "content": f"q{i}"}], "answer": str(i)} for i in range(10)]


def setup(**cfg: Any) -> EnvSetup:
    config = RLConfig(group_size=3, groups_per_batch=4, **cfg)
    return EnvSetup(ROWS, ROWS[:2], None, CharRenderer(), config)  # type: ignore[arg-type]


def tokens(text: str, stop: bool = True) -> list[int]:
    return [ord(c) for c in text] + ([0] if stop else [])


def test_reward_is_correctness_plus_the_format_term() -> None:
    env = make_env(setup()).train.get_batch(0)[0].make_envs()[0]
    answer = str(env.row["answer"])  # type: ignore[attr-defined]
    right = env.step(tokens(answer))
    assert (right.reward, right.metrics) == (1.0, {"format": 1.0, "correct": 1.0})
    wrong = env.step(tokens("x"))
    assert wrong.reward == 0.0 and wrong.metrics["correct"] == 0.0
    unfinished = env.step(tokens(answer, stop=False))  # right digits, no stop token
    assert unfinished.reward == pytest.approx(1.0 - 0.1)
    assert (
        make_env(setup(format_coef=0.0))
        .train.get_batch(0)[0]
        .make_envs()[0]
        .step(tokens("x", stop=False))
        .reward
        == 0.0
    )


def test_batches_depend_only_on_the_index() -> None:
    a, b = make_env(setup()).train, make_env(setup()).train
    assert len(a) == 2  # 10 rows // 4 per batch, one epoch
    rows = [[g.row["answer"] for g in a.get_batch(i)] for i in (1, 0)]  # type: ignore[attr-defined]
    assert rows == [[g.row["answer"] for g in b.get_batch(i)] for i in (1, 0)]  # type: ignore[attr-defined]
    assert set(rows[0]).isdisjoint(rows[1])  # one epoch visits each problem once
    assert len(a.get_batch(0)[0].make_envs()) == 3


def test_held_out_groups_have_one_env_each() -> None:
    bundle = make_env(setup())
    assert [len(g.make_envs()) for g in bundle.test] == [1, 1]


def test_env_factories_resolve_by_name_or_import_path() -> None:
    from kitchen.errors import ConfigError
    from kitchen.workflows.rl import envs

    assert envs.resolve("arith") is make_env
    assert envs.resolve("kitchen.workflows.rl.arith:make_env") is make_env
    with pytest.raises(ConfigError, match="unknown env 'nope'"):
        envs.resolve("nope")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        envs.resolve("no_such_module:make")
