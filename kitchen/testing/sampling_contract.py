"""The SamplingClient contract, written once for every sampling backend.

Subclass ``SamplingClientContract`` and override two fixtures: ``sampler`` (a SamplingClient
on any weights that are not degenerate) and ``tokenizer`` (the matching tokenizer). The
checks relate calls to one another — greedy against sampled, sampled against
``compute_logprobs``, stopped against unstopped — so they hold for any model.
"""

from __future__ import annotations

from typing import Any

import pytest

from kitchen.ports import SamplingClient, Tokenizer
from kitchen.types import ModelInput, SampledSequence, SamplingParams

PROMPT_TEXT = "Once upon a time"
GREEDY = SamplingParams(max_tokens=12, temperature=0.0)


class SamplingClientContract:
    __test__ = False

    @pytest.fixture
    def sampler(self) -> SamplingClient:
        raise NotImplementedError("override sampler in the subclass")

    @pytest.fixture
    def tokenizer(self) -> Tokenizer:
        raise NotImplementedError("override tokenizer in the subclass")

    @pytest.fixture
    def prompt(self, tokenizer: Tokenizer) -> ModelInput:
        return ModelInput.from_ints(tokenizer.encode(PROMPT_TEXT, add_special_tokens=False))

    def one(self, sampler: SamplingClient, prompt: ModelInput, **params: Any) -> SampledSequence:
        (sequence,) = sampler.sample(prompt, 1, SamplingParams(**params)).result().sequences
        return sequence

    def test_same_seed_same_tokens(self, sampler: SamplingClient, prompt: ModelInput) -> None:
        params = SamplingParams(max_tokens=16, temperature=1.0, seed=7)
        first = sampler.sample(prompt, 3, params).result()
        again = sampler.sample(prompt, 3, params).result()
        other = sampler.sample(prompt, 3, SamplingParams(max_tokens=16, seed=8)).result()
        assert [s.tokens for s in first.sequences] == [s.tokens for s in again.sequences]
        assert [s.tokens for s in first.sequences] != [s.tokens for s in other.sequences]

    def test_num_samples_sequences_each_with_a_logprob_per_token(
        self, sampler: SamplingClient, prompt: ModelInput
    ) -> None:
        response = sampler.sample(prompt, 4, SamplingParams(max_tokens=6, seed=1)).result()
        assert len(response.sequences) == 4
        for sequence in response.sequences:
            assert sequence.logprobs is not None
            assert len(sequence.logprobs) == len(sequence.tokens)
            assert all(lp <= 0 for lp in sequence.logprobs)

    def test_temperature_zero_is_greedy(self, sampler: SamplingClient, prompt: ModelInput) -> None:
        greedy = self.one(sampler, prompt, max_tokens=4, temperature=0.0, seed=1)
        again = self.one(sampler, prompt, max_tokens=4, temperature=0.0, seed=2)
        assert again.tokens == greedy.tokens
        sampled = sampler.sample(prompt, 8, SamplingParams(max_tokens=1, seed=3)).result()
        assert greedy.logprobs is not None
        for sequence in sampled.sequences:
            assert sequence.logprobs is not None
            assert greedy.logprobs[0] >= sequence.logprobs[0] - 1e-6

    def test_top_k_one_and_tiny_top_p_are_greedy(
        self, sampler: SamplingClient, prompt: ModelInput
    ) -> None:
        greedy = self.one(sampler, prompt, max_tokens=8, temperature=0.0)
        assert self.one(sampler, prompt, max_tokens=8, top_k=1, seed=5).tokens == greedy.tokens
        assert self.one(sampler, prompt, max_tokens=8, top_p=1e-6, seed=5).tokens == greedy.tokens

    def test_sampled_logprobs_agree_with_compute_logprobs(
        self, sampler: SamplingClient, prompt: ModelInput
    ) -> None:
        sequence = self.one(sampler, prompt, max_tokens=10, seed=11)
        full = ModelInput.from_ints([*prompt.to_ints(), *sequence.tokens])
        scored = sampler.compute_logprobs(full).result()
        assert scored[prompt.length :] == pytest.approx(list(sequence.logprobs or ()), abs=1e-4)

    def test_max_tokens_bounds_the_length(
        self, sampler: SamplingClient, prompt: ModelInput
    ) -> None:
        sequence = self.one(sampler, prompt, max_tokens=5, seed=0)
        assert len(sequence.tokens) == 5
        assert sequence.stop_reason == "length"

    def test_stop_token_ends_the_sequence_and_is_kept(
        self, sampler: SamplingClient, prompt: ModelInput
    ) -> None:
        greedy = self.one(sampler, prompt, max_tokens=12, temperature=0.0).tokens
        stop_token = greedy[3]
        end = greedy.index(stop_token) + 1
        stopped = self.one(sampler, prompt, max_tokens=12, temperature=0.0, stop=(stop_token,))
        assert stopped.tokens == greedy[:end]
        assert stopped.stop_reason == "stop"

    def test_stop_string_ends_the_sequence_and_is_kept(
        self, sampler: SamplingClient, tokenizer: Tokenizer, prompt: ModelInput
    ) -> None:
        greedy = self.one(sampler, prompt, max_tokens=12, temperature=0.0).tokens
        stop_text = tokenizer.decode(greedy[4:6])
        end = next(k for k in range(1, 13) if stop_text in tokenizer.decode(greedy[:k]))
        stopped = self.one(sampler, prompt, max_tokens=12, temperature=0.0, stop=(stop_text,))
        assert stopped.tokens == greedy[:end]
        assert stop_text in tokenizer.decode(stopped.tokens)
        assert stopped.stop_reason == "stop"

    def test_compute_logprobs_gives_one_entry_per_prompt_token(
        self, sampler: SamplingClient, prompt: ModelInput
    ) -> None:
        logprobs = sampler.compute_logprobs(prompt).result()
        assert len(logprobs) == prompt.length
        assert logprobs[0] is None
        assert all(lp is not None and lp <= 0 for lp in logprobs[1:])
