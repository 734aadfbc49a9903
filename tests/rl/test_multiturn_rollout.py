"""Multi-turn rollouts on a scripted sampler: turns and their seeds, the turn limit and the
token budget, masked observation tokens, and durable env steps (recorded, replayed with the
action checked, idempotent called again, ``once`` never called twice)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from kitchen.errors import ConfigError
from kitchen.stage_api import ActivityResult, RecordedActivity
from kitchen.types import (
    CompletedFuture,
    ModelInput,
    SampledSequence,
    SampleResponse,
    SamplingParams,
)
from kitchen.workflows.rl.data import transition_datum
from kitchen.workflows.rl.env import Env, StepResult, Trajectory
from kitchen.workflows.rl.rollout import (
    Limits,
    decode_step,
    encode_step,
    group_seed,
    sample_groups,
    step_key,
    turn_seed,
)

STOP = [0]


class Sampler:
    """Replies ``[100 + reply number, 0]``; remembers (prompts, n, seed, max_tokens) per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[list[int]], int, int, int]] = []
        self.replies = 0

    def _reply(self) -> SampledSequence:
        self.replies += 1
        return SampledSequence((100 + self.replies, 0), (-0.5, -0.25), "stop")

    def sample(self, prompt: ModelInput, num_samples: int, params: Any) -> Any:
        self.calls.append(([prompt.to_ints()], num_samples, params.seed, params.max_tokens))
        reply = self._reply()
        return CompletedFuture(SampleResponse((reply,) * num_samples))

    def sample_batch(self, prompts: Sequence[ModelInput], params: Any) -> Any:
        self.calls.append(([p.to_ints() for p in prompts], 1, params.seed, params.max_tokens))
        return CompletedFuture([SampleResponse((self._reply(),)) for _ in prompts])


@dataclass
class GuessEnv:
    """Done when the reply's first token is even; otherwise the observation grows by the
    reply and a two-token feedback ``[7, 7]``. Counts its calls."""

    effects: str = "none"
    calls: list[list[int]] = field(default_factory=list)
    replayed: list[list[int]] = field(default_factory=list)
    unknown: list[list[int]] = field(default_factory=list)
    history: list[int] = field(default_factory=lambda: [1, 2, 3])

    def initial_observation(self) -> tuple[ModelInput, list[int]]:
        return ModelInput.from_ints([1, 2, 3]), STOP

    def _result(self, action: list[int]) -> StepResult:
        done = action[0] % 2 == 0
        nxt = ModelInput.empty() if done else ModelInput.from_ints([*self.history, *action, 7, 7])
        return StepResult(float(done), done, nxt, STOP, {"correct": float(done)}, {"n": 1})

    def step(self, action: list[int]) -> StepResult:
        self.calls.append(action)
        return self.replay_step(action, self._result(action))

    def replay_step(self, action: list[int], result: StepResult) -> StepResult:
        self.replayed.append(action)
        self.history = [*self.history, *action, 7, 7]
        return result

    def on_unknown_outcome(self, action: list[int]) -> StepResult:
        self.unknown.append(action)
        return self.replay_step(action, self._result(action))


@dataclass
class Builder:
    envs: list[GuessEnv]

    def make_envs(self) -> Sequence[Env]:
        return self.envs

    def compute_group_rewards(self, trajectories: Sequence[Trajectory]) -> list[Any]:
        return [(0.0, {}) for _ in trajectories]

    def logging_tags(self) -> list[str]:
        return ["guess"]


class Log:
    """The activity log's contract in memory: what ``record``/``start`` put, ``get`` reads."""

    def __init__(self) -> None:
        self.done: dict[str, ActivityResult] = {}
        self.started: set[str] = set()
        self.commits: list[list[str]] = []

    def get(self, key: str) -> RecordedActivity | None:
        if key in self.done:
            r = self.done[key]
            return RecordedActivity(key, r.kind, r.step, 1, "completed", r.result, r.recovered)
        if key in self.started:
            return RecordedActivity(key, "env_step", 0, 1, "started")
        return None

    def start(self, key: str, kind: str, step: int | None = None) -> None:
        self.started.add(key)
        self.commits.append([f"start:{key}"])

    def record(self, results: Sequence[ActivityResult]) -> None:
        self.done.update({r.key: r for r in results})
        self.commits.append([r.key for r in results])


PARAMS = SamplingParams(max_tokens=4, temperature=1.0)


def _roll(envs: list[GuessEnv], log: Log | None, limits: Limits) -> tuple[Sampler, Any]:
    sampler = Sampler()
    groups = sample_groups(sampler, [Builder(envs)], PARAMS, 5, 2, log, limits)  # type: ignore[arg-type]
    return sampler, groups[0]


def test_later_turns_sample_the_live_episodes_together_seeded_per_turn() -> None:
    envs = [GuessEnv(), GuessEnv()]
    sampler, group = _roll(envs, None, Limits(max_turns=3))
    # turn 0: one call for the group, reply 101 (odd: both go on); turn 1: one batch of both
    # episodes (replies 102 and 103: the first ends); turn 2: the second alone (104, ends)
    assert [(len(p), n, seed) for p, n, seed, _ in sampler.calls] == [
        (1, 2, group_seed(5, 2, 0)),
        (2, 1, turn_seed(5, 2, 0, 1)),
        (1, 1, turn_seed(5, 2, 0, 2)),
    ]
    assert sampler.calls[1][0][0] == [1, 2, 3, 101, 0, 7, 7]
    assert len({seed for _, _, seed, _ in sampler.calls}) == 3
    first, second = group.trajectories
    assert [t.tokens for t in first.transitions] == [(101, 0), (102, 0)]
    assert [t.tokens for t in second.transitions] == [(101, 0), (103, 0), (104, 0)]
    assert [t.episode_done for t in second.transitions] == [False, False, True]
    assert group.get_total_rewards() == [1.0, 1.0]


def test_the_turn_limit_and_the_token_budget_end_an_episode() -> None:
    _, group = _roll([GuessEnv()], None, Limits(max_turns=2))
    (t,) = group.trajectories
    assert [x.tokens for x in t.transitions] == [(101, 0), (102, 0)]  # 102 is even anyway
    _, group = _roll([GuessEnv()], None, Limits(max_turns=1))
    assert [x.episode_done for x in group.trajectories[0].transitions] == [True]
    # the next observation has 7 tokens: a budget of 9 leaves 2 to sample, 7 leaves none
    sampler, group = _roll([GuessEnv()], None, Limits(max_turns=5, max_episode_tokens=9))
    assert [c[3] for c in sampler.calls] == [4, 2]
    sampler, group = _roll([GuessEnv()], None, Limits(max_turns=5, max_episode_tokens=7))
    assert len(sampler.calls) == 1 and group.trajectories[0].transitions[0].episode_done


def test_observation_tokens_carry_no_advantage() -> None:
    _, group = _roll([GuessEnv()], None, Limits(max_turns=2))
    second = group.trajectories[0].transitions[1]
    datum, mask = transition_datum(second, 0.5)
    # ob [1 2 3 101 0 7 7] + action [102 0]: the targets are shifted by one
    assert mask == [0.0] * 6 + [1.0, 1.0]
    assert list(datum.loss_fn_inputs["advantages"].data) == [0.0] * 6 + [0.5, 0.5]


def test_a_step_record_keeps_only_the_new_observation_tokens() -> None:
    ob = ModelInput.from_ints([1, 2, 3])
    r = StepResult(0.0, False, ModelInput.from_ints([1, 2, 3, 9, 0, 7, 7]), STOP, {"a": 1.0})
    doc = encode_step(ob, [9, 0], r)
    assert (doc["ob_prefix"], doc["ob_tail"], doc["effect"]) == (5, [7, 7], {})
    assert decode_step(ob, doc) == r


def test_idempotent_steps_are_recorded_per_turn_and_replayed_without_a_call() -> None:
    log = Log()
    first = [GuessEnv("idempotent"), GuessEnv("idempotent")]
    _, group = _roll(first, log, Limits(max_turns=3))
    keys = [step_key(2, 0, 0, 0), step_key(2, 0, 1, 0)]
    assert log.commits == [
        keys,
        [step_key(2, 0, 0, 1), step_key(2, 0, 1, 1)],
        [step_key(2, 0, 1, 2)],
    ]
    assert log.done[keys[0]].result["effect"] == {"n": 1}

    # a resume: every step is on record; none is called, and the episodes come out the same
    del log.done[step_key(2, 0, 1, 2)]  # ...but this one never was: it is called again
    again = [GuessEnv("idempotent"), GuessEnv("idempotent")]
    _, replayed = _roll(again, log, Limits(max_turns=3))
    assert replayed == group
    assert again[0].calls == [] and again[1].calls == [[104, 0]]
    assert again[1].replayed == [[101, 0], [103, 0], [104, 0]]  # the env's state followed


def test_a_once_step_is_started_first_and_an_unknown_outcome_goes_to_the_hook() -> None:
    log = Log()
    envs = [GuessEnv("once")]
    _roll(envs, log, Limits(max_turns=2))
    k0, k1 = step_key(2, 0, 0, 0), step_key(2, 0, 0, 1)
    assert log.commits == [[f"start:{k0}"], [k0], [f"start:{k1}"], [k1]]

    del log.done[k1]  # died after the start of turn 1, before its result
    again = [GuessEnv("once")]
    _roll(again, log, Limits(max_turns=2))
    assert again[0].calls == [] and again[0].unknown == [[102, 0]]
    assert log.done[k1].recovered is True


def test_a_re_sampled_action_that_differs_from_the_record_stops_the_run() -> None:
    log = Log()
    _roll([GuessEnv("idempotent")], log, Limits(max_turns=1))
    key = step_key(2, 0, 0, 0)
    log.done[key] = ActivityResult(key, "env_step", {**log.done[key].result, "action": [5]}, 2)
    with pytest.raises(ConfigError, match="differs from the recorded one"):
        _roll([GuessEnv("idempotent")], log, Limits(max_turns=1))


def test_an_env_that_cannot_answer_an_unknown_outcome_is_refused() -> None:
    class NoHook(GuessEnv):
        on_unknown_outcome = None  # type: ignore[assignment]

    with pytest.raises(ConfigError, match="no on_unknown_outcome"):
        _roll([NoHook("once")], Log(), Limits())
    with pytest.raises(ConfigError, match="declares effects='sometimes'"):
        _roll([GuessEnv("sometimes")], Log(), Limits())
