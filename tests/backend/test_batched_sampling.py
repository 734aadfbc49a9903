"""``sample_batch``: many prompts in one left-padded batch give what one-by-one sampling gives,
fast enough for greedy evaluation over a test set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kitchen.types import ModelInput, SamplingParams

GREEDY = SamplingParams(max_tokens=16, temperature=0.0)


def prompts(tokenizer: Any, count: int) -> list[ModelInput]:
    """Prompts of lengths 5 to 24 characters, so the batch needs real padding."""
    texts = [f"Q{i}: " + "what is 7 + 5?"[: 1 + i % 15] + "x" * (i % 5) for i in range(count)]
    return [ModelInput.from_ints(tokenizer.encode(t, add_special_tokens=False)) for t in texts]


def test_batched_greedy_equals_one_prompt_at_a_time(local_client: Callable[..., Any]) -> None:
    client = local_client()
    sampler = client.sampling_client()
    batch = prompts(client.get_tokenizer(), 12)
    together = sampler.sample_batch(batch, GREEDY).result()
    alone = [sampler.sample(p, 1, GREEDY).result() for p in batch]
    assert [r.sequences[0].tokens for r in together] == [r.sequences[0].tokens for r in alone]
    assert all(len(r.sequences[0].tokens) == 16 for r in together)
    sampler.close()


def test_a_hundred_prompts_in_one_batch(
    local_client: Callable[..., Any],
) -> None:
    # How fast this is belongs in a benchmark, not a timed test: here only that it works.
    client = local_client()
    sampler = client.sampling_client()
    batch = prompts(client.get_tokenizer(), 100)
    responses = sampler.sample_batch(batch, GREEDY).result()
    assert len(responses) == 100
    assert all(len(r.sequences[0].tokens) == 16 for r in responses)
    sampler.close()
