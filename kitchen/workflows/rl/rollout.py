"""Sampling a step's trajectory groups, turn by turn, with durable environment steps.

Turn 0 of a group is **one** ``sample`` call for all its envs (they share the initial
observation), seeded by a hash of (run seed, step, group); every group's first call is
submitted before any is awaited, so the sampler works through them back to back. An env that
answers with a next observation starts another turn for that episode: the group's live
episodes are sampled together, one ``sample_batch`` call (one sequence per observation) seeded
by a hash of (run seed, step, group, turn); episodes whose stop conditions or remaining token
budgets differ go in separate calls with that seed. The same step on the same weights gives
the same tokens on every attempt, and no two groups or turns share a stream. An episode ends
when its env says so, at ``max_turns``, or when the next observation leaves no room under
``max_episode_tokens``.

Environment steps are activities (``kitchen.engine.activities``) for envs that declare
effects (``Env.effects``, see :data:`~kitchen.workflows.rl.env.Effects`): each step's result,
under the key ``rl/step-S/group-G/env-E/turn-T``, is on record before the next turn is
sampled. A resumed run samples the step again; where a result is on record it checks that the
re-sampled action is the recorded one, gives the result back (``replay_step``) and never calls
the env; where only a ``once`` step's start is on record, the env's ``on_unknown_outcome``
answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kitchen.engine import faults
from kitchen.errors import ConfigError
from kitchen.ports import SamplingClient
from kitchen.stage_api import ActivityLog, ActivityResult
from kitchen.types import Future, ModelInput, SampleResponse, SamplingParams
from kitchen.workflows.rl.env import (
    Env,
    EnvGroupBuilder,
    StepResult,
    StopCondition,
    Trajectory,
    TrajectoryGroup,
    Transition,
)

KIND = "env_step"
EFFECTS = ("none", "idempotent", "once")


def group_seed(run_seed: int, step: int, group: int) -> int:
    """A 63-bit seed that is a pure function of (run seed, step, group index)."""
    digest = hashlib.sha256(f"kitchen.rl:{run_seed}:{step}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def turn_seed(run_seed: int, step: int, group: int, turn: int) -> int:
    """The seed of a later turn (``turn`` ≥ 1) of a group: a pure function of (run seed, step,
    group, turn). Turn 0 is the group's one call, seeded by ``group_seed``."""
    text = f"kitchen.rl:{run_seed}:{step}:{group}:turn-{turn}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def step_key(step: int, group: int, env: int, turn: int) -> str:
    return f"rl/step-{step}/group-{group}/env-{env}/turn-{turn}"


@dataclass(frozen=True)
class Limits:
    """When an episode ends besides the env saying so: after ``max_turns`` turns, or when the
    next observation leaves no token to sample under ``max_episode_tokens`` (None: no budget)."""

    max_turns: int = 1
    max_episode_tokens: int | None = None

    @classmethod
    def of(cls, config: Any) -> Limits:
        """The limits a config sets (``max_turns``, ``max_episode_tokens``); a config without
        them (``rl_basic``'s) runs one-turn episodes."""
        return cls(
            int(getattr(config, "max_turns", 1)), getattr(config, "max_episode_tokens", None)
        )


def effects_of(env: Env) -> str:
    effects = getattr(env, "effects", "none")
    if effects not in EFFECTS:
        raise ConfigError(
            f"env {type(env).__name__} declares effects={effects!r}: use one of {EFFECTS}"
        )
    if effects == "once" and not callable(getattr(env, "on_unknown_outcome", None)):
        raise ConfigError(
            f"env {type(env).__name__} declares effects='once' but has no on_unknown_outcome"
            "(action) method: add one, or declare its steps idempotent"
        )
    return str(effects)


# --------------------------------------------------------------------------- the record


def encode_step(ob: ModelInput, action: Sequence[int], r: StepResult) -> dict[str, Any]:
    """A step's result as an activity result. The next observation usually extends the
    observation and the action, so only the tokens after their common prefix are kept."""
    before = ob.to_ints() + list(action)
    after = r.next_observation.to_ints()
    prefix = 0
    for a, b in zip(before, after, strict=False):
        if a != b:
            break
        prefix += 1
    return {
        "action": list(action),
        "reward": float(r.reward),
        "episode_done": bool(r.episode_done),
        "ob_prefix": prefix,
        "ob_tail": after[prefix:],
        "stop": list(r.next_stop_condition),
        "metrics": {k: float(v) for k, v in r.metrics.items()},
        "effect": dict(r.effect),
    }


def decode_step(ob: ModelInput, result: Mapping[str, Any]) -> StepResult:
    before = ob.to_ints() + [int(x) for x in result["action"]]
    tokens = before[: int(result["ob_prefix"])] + [int(x) for x in result["ob_tail"]]
    return StepResult(
        reward=float(result["reward"]),
        episode_done=bool(result["episode_done"]),
        next_observation=ModelInput.from_ints(tokens) if tokens else ModelInput.empty(),
        next_stop_condition=list(result["stop"]),
        metrics={k: float(v) for k, v in result["metrics"].items()},
        effect=dict(result.get("effect") or {}),
    )


@dataclass
class Durable:
    """The environment steps of one step of a run, through the stage's activity log (None:
    nothing recorded, every env is called: evaluation, or a log that cannot record)."""

    log: ActivityLog | None
    step: int
    pending: list[ActivityResult] = field(default_factory=list)

    def call(self, env: Env, ob: ModelInput, action: list[int], key: str) -> StepResult:
        effects = effects_of(env)
        if effects == "none" or self.log is None:
            return env.step(action)
        found = self.log.get(key)
        if found is not None and found.status == "completed":
            assert found.result is not None
            recorded = [int(x) for x in found.result["action"]]
            if recorded != action:
                raise ConfigError(
                    f"env step {key}: the re-sampled action differs from the recorded one "
                    f"({len(action)} tokens, recorded {len(recorded)}): sampling is not "
                    "deterministic here (resume with the torch threads the run had)"
                )
            result = decode_step(ob, found.result)
            replay = getattr(env, "replay_step", None)
            if callable(replay):
                replay(action, result)
            return result
        recovered = False
        if effects == "once":
            if found is not None:  # started, never recorded: the outcome is unknown
                result = env.on_unknown_outcome(action)  # type: ignore[attr-defined]
                recovered = True
            else:
                self.log.start(key, KIND, self.step)
                result = env.step(action)
        else:
            result = env.step(action)
        faults.point("rollouts:env_called")
        done = ActivityResult(key, KIND, encode_step(ob, action, result), self.step, recovered)
        if effects == "once":
            self.log.record([done])
        else:
            self.pending.append(done)
        return result

    def flush(self) -> None:
        """Record the idempotent steps of a turn, before the next turn is sampled."""
        if self.pending and self.log is not None:
            self.log.record(self.pending)
        self.pending = []


# --------------------------------------------------------------------------- rollouts


@dataclass
class _Episode:
    env: Env
    index: int
    ob: ModelInput
    stop: StopCondition
    transitions: list[Transition] = field(default_factory=list)
    done: bool = False


@dataclass
class _Pending:
    builder: EnvGroupBuilder
    envs: Sequence[Env]
    ob: ModelInput
    stop: StopCondition
    seed: int
    group: int
    future: Future[SampleResponse]


def _params(params: SamplingParams, stop: StopCondition, seed: int, max_tokens: int) -> Any:
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        stop=tuple(stop),  # type: ignore[arg-type]  # str or int tuple, as the env gave it
        seed=seed,
    )


def _submit(
    sampler: SamplingClient, builder: EnvGroupBuilder, params: SamplingParams, seed: int, g: int
) -> _Pending:
    envs = builder.make_envs()
    if not envs:
        raise ConfigError("an env group builder made no envs: make at least one per group")
    starts = [env.initial_observation() for env in envs]
    ob, stop = starts[0]
    if any(o.to_ints() != ob.to_ints() for o, _ in starts[1:]):
        raise ConfigError("the envs of one group must share their initial observation")
    sampled = _params(params, stop, seed, params.max_tokens)
    return _Pending(builder, envs, ob, stop, seed, g, sampler.sample(ob, len(envs), sampled))


def _room(limits: Limits, ob: ModelInput, max_tokens: int) -> int:
    if limits.max_episode_tokens is None:
        return max_tokens
    return min(max_tokens, limits.max_episode_tokens - ob.length)


def _take(
    ep: _Episode,
    tokens: list[int],
    logprobs: Sequence[float] | None,
    turn: int,
    durable: Durable,
    key: str,
    limits: Limits,
    max_tokens: int,
) -> None:
    if logprobs is None:
        raise ConfigError("the sampler returned no log-probs: RL needs them")
    result = durable.call(ep.env, ep.ob, tokens, key)
    ended = bool(result.episode_done)
    if not ended and (
        turn + 1 >= limits.max_turns or _room(limits, result.next_observation, max_tokens) < 1
    ):
        ended = True  # cut short by the turn limit or the token budget
    ep.transitions.append(
        Transition(
            ep.ob,
            tuple(tokens),
            tuple(logprobs),
            float(result.reward),
            ended,
            {k: float(v) for k, v in result.metrics.items()},
        )
    )
    ep.done = ended
    if not ended:
        ep.ob, ep.stop = result.next_observation, result.next_stop_condition


def _finish(
    p: _Pending,
    sampler: SamplingClient,
    params: SamplingParams,
    run_seed: int,
    durable: Durable,
    limits: Limits,
) -> TrajectoryGroup:
    response = p.future.result()
    episodes = [_Episode(env, j, p.ob, p.stop) for j, env in enumerate(p.envs)]
    step, g = durable.step, p.group
    for ep, seq in zip(episodes, response.sequences, strict=True):
        key = step_key(step, g, ep.index, 0)
        _take(ep, list(seq.tokens), seq.logprobs, 0, durable, key, limits, params.max_tokens)
    durable.flush()
    turn = 1
    while live := [ep for ep in episodes if not ep.done]:
        # one call for the group's live episodes; they share a stop condition and a budget
        # per call, so episodes that differ in either are sampled in separate calls
        calls: dict[tuple[tuple[Any, ...], int], list[_Episode]] = {}
        for ep in live:
            room = _room(limits, ep.ob, params.max_tokens)
            calls.setdefault((tuple(ep.stop), room), []).append(ep)
        seed = turn_seed(run_seed, step, g, turn)
        futures = [
            (
                eps,
                sampler.sample_batch(
                    [ep.ob for ep in eps], _params(params, list(stop), seed, room)
                ),
            )
            for (stop, room), eps in calls.items()
        ]
        for eps, future in futures:
            for ep, response in zip(eps, future.result(), strict=True):
                seq = response.sequences[0]
                key = step_key(step, g, ep.index, turn)
                _take(
                    ep,
                    list(seq.tokens),
                    seq.logprobs,
                    turn,
                    durable,
                    key,
                    limits,
                    params.max_tokens,
                )
        durable.flush()
        turn += 1
    trajectories = [Trajectory(tuple(ep.transitions)) for ep in episodes]
    group = p.builder.compute_group_rewards(trajectories)
    return TrajectoryGroup(
        trajectories=tuple(trajectories),
        final_rewards=tuple(float(r) for r, _ in group),
        metrics=tuple({k: float(v) for k, v in m.items()} for _, m in group),
        seed=p.seed,
        tags=tuple(p.builder.logging_tags()),
    )


def sample_groups(
    sampler: SamplingClient,
    builders: Sequence[EnvGroupBuilder],
    params: SamplingParams,
    run_seed: int,
    step: int,
    activities: ActivityLog | None = None,
    limits: Limits = Limits(),
) -> list[TrajectoryGroup]:
    """Roll out every group of one step on the sampler's (fixed) weights, recording the steps
    of envs with effects in ``activities``."""
    pending = [
        _submit(sampler, b, params, group_seed(run_seed, step, g), g)
        for g, b in enumerate(builders)
    ]
    durable = Durable(activities, step)
    groups = []
    for i, p in enumerate(pending):
        groups.append(_finish(p, sampler, params, run_seed, durable, limits))
        if i == 0:
            faults.point("rollouts:mid_sampling")
    return groups
