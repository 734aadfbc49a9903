"""Sampling a step's trajectory groups: one ``sample`` call per group, seeded per group.

Every group's call is submitted before any is awaited, so the sampler works through them back
to back. The seed of group ``g`` at step ``s`` is a hash of (run seed, s, g): the same step on
the same weights gives the same tokens on every attempt, and no two groups share a stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from kitchen.engine import faults
from kitchen.errors import ConfigError
from kitchen.ports import SamplingClient
from kitchen.types import Future, ModelInput, SampleResponse, SamplingParams
from kitchen.workflows.rl.env import Env, EnvGroupBuilder, Trajectory, TrajectoryGroup, Transition


def group_seed(run_seed: int, step: int, group: int) -> int:
    """A 63-bit seed that is a pure function of (run seed, step, group index)."""
    digest = hashlib.sha256(f"kitchen.rl:{run_seed}:{step}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass
class _Pending:
    builder: EnvGroupBuilder
    envs: Sequence[Env]
    ob: ModelInput
    seed: int
    future: Future[SampleResponse]


def _submit(
    sampler: SamplingClient, builder: EnvGroupBuilder, params: SamplingParams, seed: int
) -> _Pending:
    envs = builder.make_envs()
    if not envs:
        raise ConfigError("an env group builder made no envs: make at least one per group")
    starts = [env.initial_observation() for env in envs]
    ob, stop = starts[0]
    if any(o.to_ints() != ob.to_ints() for o, _ in starts[1:]):
        raise ConfigError("the envs of one group must share their initial observation")
    stop_t = tuple(stop)
    sampled = SamplingParams(
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        stop=stop_t,  # type: ignore[arg-type]  # str or int tuple, as the env gave it
        seed=seed,
    )
    return _Pending(builder, envs, ob, seed, sampler.sample(ob, len(envs), sampled))


def _finish(p: _Pending) -> TrajectoryGroup:
    response = p.future.result()
    trajectories = []
    for env, seq in zip(p.envs, response.sequences, strict=True):
        if seq.logprobs is None:
            raise ConfigError("the sampler returned no log-probs: RL needs them")
        result = env.step(list(seq.tokens))
        if not result.episode_done:
            raise ConfigError(
                "multi-turn envs are not supported yet: end every episode in one step"
            )
        t = Transition(
            p.ob,
            tuple(seq.tokens),
            tuple(seq.logprobs),
            float(result.reward),
            True,
            {k: float(v) for k, v in result.metrics.items()},
        )
        trajectories.append(Trajectory((t,)))
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
) -> list[TrajectoryGroup]:
    """Roll out every group of one step on the sampler's (fixed) weights."""
    pending = [
        _submit(sampler, b, params, group_seed(run_seed, step, g)) for g, b in enumerate(builders)
    ]
    groups = []
    for i, p in enumerate(pending):
        groups.append(_finish(p))
        if i == 0:
            faults.point("rollouts:mid_sampling")
    return groups
