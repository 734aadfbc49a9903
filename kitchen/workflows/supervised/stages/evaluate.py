"""evaluate: held-out NLL on the assistant tokens, and exact-match accuracy by greedy sampling.

Accuracy uses the dataset's own answer checker when it has one (the embedded sets do), and an
exact match with the reference reply otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from kitchen.engine import faults
from kitchen.ports import SamplingClient
from kitchen.renderers import Renderer, TrainOnWhat
from kitchen.stage_api import StageResult
from kitchen.types import SamplingParams
from kitchen.workflows.supervised.resources import Ctx

Checker = Callable[[Mapping[str, Any], str], bool]


def _nll(sampler: SamplingClient, renderer: Renderer, rows: list[dict[str, Any]]) -> float:
    total, weight = 0.0, 0.0
    for row in rows:
        mi, w = renderer.build_supervised_example(
            row["messages"], TrainOnWhat.LAST_ASSISTANT_MESSAGE
        )
        lps = sampler.compute_logprobs(mi).result()
        for lp, wt in zip(lps[1:], w[1:], strict=True):
            if wt and lp is not None:
                total -= lp * wt
                weight += wt
    return total / weight if weight else math.nan


def _reference_match(row: Mapping[str, Any], text: str) -> bool:
    return text == str(row["messages"][-1]["content"]).strip()


def _accuracy(
    ctx: Ctx, sampler: SamplingClient, renderer: Renderer, rows: list[dict[str, Any]]
) -> float:
    params = SamplingParams(
        max_tokens=ctx.config.eval_max_tokens,
        temperature=0.0,
        stop=tuple(renderer.get_stop_sequences()),  # type: ignore[arg-type]
        seed=ctx.config.seed,
    )
    prompts = [renderer.build_generation_prompt(row["messages"][:-1]) for row in rows]
    responses = sampler.sample_batch(prompts, params).result()
    check: Checker = ctx.ports.datasets.answer_checker(ctx.config.dataset) or _reference_match
    correct = 0
    for row, resp in zip(rows, responses, strict=True):
        message, _ = renderer.parse_response(list(resp.sequences[0].tokens))
        correct += bool(check(row, str(message.get("content", "")).strip()))
    return correct / len(rows) if rows else math.nan


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    rows = list(r.test_rows)[: ctx.config.eval_examples]
    sampler = r.training.sampling_client()
    nll = _nll(sampler, r.renderer, rows)
    faults.point("evaluate:mid")
    acc = _accuracy(ctx, sampler, r.renderer, rows)
    sampler.close()
    return StageResult(
        step=r.cursor.step,
        eval_metrics={"test/nll": nll, "test/accuracy": acc, "test/examples": len(rows)},
    )
