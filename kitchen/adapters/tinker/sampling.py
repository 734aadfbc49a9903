"""TinkerSamplingClient: the SamplingClient port over an SDK sampling client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kitchen.adapters.tinker import convert
from kitchen.adapters.tinker.futures import Mapped
from kitchen.types import Future, ModelInput, SampleResponse, SamplingParams


class TinkerSamplingClient:
    def __init__(self, sdk: Any, tokenizer: Any) -> None:
        self._sdk, self._tokenizer = sdk, tokenizer

    def sample(
        self, prompt: ModelInput, num_samples: int, sampling_params: SamplingParams
    ) -> Future[SampleResponse]:
        inner = self._sdk.sample(
            convert.model_input(prompt), num_samples, convert.sampling_params(sampling_params)
        )
        return Mapped(inner, convert.sample_response)

    def compute_logprobs(self, prompt: ModelInput) -> Future[list[float | None]]:
        inner = self._sdk.compute_logprobs(convert.model_input(prompt))
        return Mapped(inner, _logprobs)

    def sample_batch(
        self, prompts: Sequence[ModelInput], sampling_params: SamplingParams
    ) -> Future[list[SampleResponse]]:
        """One request per prompt, all submitted before any is awaited."""
        futures = [self.sample(p, 1, sampling_params) for p in prompts]
        return _All(futures)

    def get_tokenizer(self) -> Any:
        return self._tokenizer

    def close(self) -> None:
        self._sdk = None


class _All:
    def __init__(self, futures: list[Future[SampleResponse]]) -> None:
        self._futures = futures

    def result(self, timeout: float | None = None) -> list[SampleResponse]:
        return [f.result(timeout) for f in self._futures]

    def done(self) -> bool:
        return all(f.done() for f in self._futures)


def _logprobs(values: Any) -> list[float | None]:
    return [None if x is None else float(x) for x in values]
