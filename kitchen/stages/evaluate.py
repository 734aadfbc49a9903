"""evaluate: held-out NLL on the assistant tokens, and exact-match accuracy by greedy sampling."""

from __future__ import annotations

import math
from typing import Any

from kitchen import faults
from kitchen.renderers import TrainOnWhat
from kitchen.types import SamplingParams


def _nll(sampler: Any, renderer: Any, rows: list[dict[str, Any]]) -> float:
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


def _accuracy(ctx: Any, sampler: Any, renderer: Any, rows: list[dict[str, Any]]) -> float:
    from kitchen.embedded.datasets import check_answer, list_embedded

    params = SamplingParams(
        max_tokens=ctx.config.eval_max_tokens,
        temperature=0.0,
        stop=tuple(renderer.get_stop_sequences()),
        seed=ctx.config.seed,
    )
    prompts = [renderer.build_generation_prompt(row["messages"][:-1]) for row in rows]
    if hasattr(sampler, "sample_batch"):
        responses = sampler.sample_batch(prompts, params).result()
    else:
        responses = [sampler.sample(p, 1, params).result() for p in prompts]
    embedded = ctx.config.dataset in list_embedded()
    correct = 0
    for row, resp in zip(rows, responses, strict=True):
        message, _ = renderer.parse_response(list(resp.sequences[0].tokens))
        text = str(message.get("content", "")).strip()
        if embedded:
            correct += bool(check_answer(ctx.config.dataset, row, text))
        else:
            correct += text == str(row["messages"][-1]["content"]).strip()
    return correct / len(rows) if rows else math.nan


def run(ctx: Any) -> dict[str, Any]:
    r = ctx.resources
    rows = list(r.test_rows)[: ctx.config.eval_examples]
    sampler = r.training.sampling_client()
    nll = _nll(sampler, r.renderer, rows)
    faults.point("evaluate:mid")
    acc = _accuracy(ctx, sampler, r.renderer, rows)
    return {
        "step": r.cursor.step,
        "metrics": {"test/nll": nll, "test/accuracy": acc, "test/examples": len(rows)},
    }
