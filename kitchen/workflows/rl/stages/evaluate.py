"""evaluate: greedy answers to the held-out problems, graded by the env.

``test/accuracy`` is the mean of the env's ``correct`` metric (the dataset's exact-match
check for the embedded sets), never the training reward, which also carries the format term.
All prompts are decoded in one greedy batch when the envs share a stop condition. A multi-turn
episode goes on greedily, turn by turn (the live episodes of a turn in one batch), within the
config's turn limit and token budget; its reward is the sum over turns and its other metrics
are those of its last step (``correct``: whether the episode ended solved). Evaluation calls
its envs every time it runs: held-out envs should have no effects.
"""

from __future__ import annotations

import math

from kitchen.engine import faults
from kitchen.ports import SamplingClient
from kitchen.stage_api import StageResult
from kitchen.types import ModelInput, SamplingParams
from kitchen.workflows.rl.env import Env, StepResult, StopCondition
from kitchen.workflows.rl.resources import Ctx
from kitchen.workflows.rl.rollout import Limits


def _greedy(
    ctx: Ctx, sampler: SamplingClient, starts: list[tuple[ModelInput, StopCondition]]
) -> list[list[int]]:
    def params(stop: StopCondition) -> SamplingParams:
        return SamplingParams(
            max_tokens=ctx.config.eval_max_tokens,
            temperature=0.0,
            stop=tuple(stop),  # type: ignore[arg-type]  # str or int tuple, as the env gave it
            seed=ctx.config.seed,
        )

    stops = {tuple(stop) for _, stop in starts}
    if len(stops) == 1:
        batch = sampler.sample_batch([ob for ob, _ in starts], params(starts[0][1])).result()
        return [list(resp.sequences[0].tokens) for resp in batch]
    futures = [sampler.sample(ob, 1, params(stop)) for ob, stop in starts]
    return [list(f.result().sequences[0].tokens) for f in futures]


def _goes_on(limits: Limits, turns: int, result: StepResult) -> bool:
    if result.episode_done or turns >= limits.max_turns:
        return False
    budget = limits.max_episode_tokens
    return budget is None or result.next_observation.length < budget


def measure(ctx: Ctx, sampler: SamplingClient) -> dict[str, float]:
    """The held-out metrics of ``sampler``'s greedy answers (any sampler: the policy's, or a
    teacher's measured by the same evaluator); empty when there are no held-out problems."""
    r = ctx.resources
    envs: list[Env] = [b.make_envs()[0] for b in list(r.test_groups)[: ctx.config.eval_examples]]
    if not envs:
        return {}
    starts = [env.initial_observation() for env in envs]
    replies = _greedy(ctx, sampler, starts)
    results = [env.step(tokens) for env, tokens in zip(envs, replies, strict=True)]
    rewards = [x.reward for x in results]
    limits = Limits.of(ctx.config)
    live = [i for i, x in enumerate(results) if _goes_on(limits, 1, x)]
    turns = 1
    while live:  # later turns of multi-turn episodes, greedily, all live episodes in a batch
        nexts = [(results[i].next_observation, results[i].next_stop_condition) for i in live]
        replies = _greedy(ctx, sampler, nexts)
        for i, tokens in zip(live, replies, strict=True):
            results[i] = envs[i].step(tokens)
            rewards[i] += results[i].reward
        turns += 1
        live = [i for i in live if _goes_on(limits, turns, results[i])]
    metrics: dict[str, float] = {
        "test/reward/total": sum(rewards) / len(results),
        "test/examples": float(len(results)),
    }
    names = sorted({k for x in results for k in x.metrics})
    for name in names:
        metrics[f"test/{name}"] = sum(x.metrics.get(name, 0.0) for x in results) / len(results)
    metrics["test/accuracy"] = metrics.get("test/correct", math.nan)
    return metrics


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    if not r.test_groups:
        return StageResult({"examples": 0}, step=r.cursor.step)
    sampler = r.training.sampling_client()
    try:
        faults.point("evaluate:mid")
        metrics = measure(ctx, sampler)
    finally:
        sampler.close()
    return StageResult(step=r.cursor.step, eval_metrics=metrics)
