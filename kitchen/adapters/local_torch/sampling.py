"""LocalSamplingClient: generation from a frozen snapshot of a training client's weights.

Requests run on the process's one torch thread (see ``worker``), in submission order, so a
caller can queue many and collect them later. Randomness comes only from ``torch.Generator``
objects: a request with a ``seed`` gets a generator of its own (same seed, same tokens); one
without draws from the client's private stream, seeded when the client was made, so the global
torch RNG a training run checkpoints is never touched by sampling.

Beyond the SamplingClient port, ``sample_batch`` decodes many prompts in one left-padded
batch; greedy evaluation over a test set should use it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from kitchen.adapters.local_torch import worker
from kitchen.adapters.local_torch.decode import (
    StopRule,
    check_params,
    generate,
    prompt_logprobs,
)
from kitchen.errors import ConfigError
from kitchen.types import Future, ModelInput, SampleResponse, SamplingParams

if TYPE_CHECKING:  # pragma: no cover
    import torch


def batchable(prompt: ModelInput, num_samples: int, params: SamplingParams) -> Hashable | None:
    """What ``sample`` calls must share to be answered by one decode with results bit for
    bit those of each call alone, or None if this call must run alone.

    Only identical calls qualify: the same prompt, number of samples and parameters, seed
    included, and seeded or greedy (an unseeded call draws from the client's shared stream,
    so two of them differ by design). Calls that differ in anything would have to share a
    batch of more rows than each has alone, and a batch's size changes the forward's
    rounding on CPU: on the embedded model (``bench/sample_batching.py``), calls of 1-3
    samples batched with others got logprobs up to about 2e-5 away from their own with one
    torch thread, and nearly every call did with two, so such calls are never batched."""
    if params.seed is None and params.temperature != 0:
        return None
    return (tuple(prompt.to_ints()), num_samples, params)


class LocalSamplingClient:
    """Samples from fixed weights; made by ``LocalTrainingClient.sampling_client()``."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, seed: int) -> None:
        import torch

        self._model = model
        self._tokenizer = tokenizer
        self._device = next(model.parameters()).device
        self._stream = torch.Generator(device=self._device).manual_seed(seed)
        self._executor = worker.Lane()

    def sample(
        self, prompt: ModelInput, num_samples: int, sampling_params: SamplingParams
    ) -> Future[SampleResponse]:
        """``num_samples`` continuations of one prompt, decoded together."""
        return self._executor.submit(self._sample, [prompt], num_samples, sampling_params)

    def sample_batch(
        self,
        prompts: Sequence[ModelInput],
        sampling_params: SamplingParams,
        num_samples: int = 1,
    ) -> Future[list[SampleResponse]]:
        """One response per prompt, all prompts decoded in one batch (fast greedy evaluation).

        With a ``seed`` the whole call is reproducible; a row's tokens may differ from what the
        same prompt would get alone, as the random draws are shared across the batch.
        """
        return self._executor.submit(self._sample_many, list(prompts), num_samples, sampling_params)

    def batch_key(
        self, prompt: ModelInput, num_samples: int, sampling_params: SamplingParams
    ) -> Hashable | None:
        return batchable(prompt, num_samples, sampling_params)

    def sample_together(
        self, requests: Sequence[tuple[ModelInput, int, SamplingParams]]
    ) -> Future[list[SampleResponse]]:
        """Several ``sample`` calls answered by one decode, each exactly as it would be alone:
        only calls that :func:`batchable` puts together; anything else raises
        ``ConfigError``."""
        return self._executor.submit(self._sample_together, list(requests))

    def compute_logprobs(self, prompt: ModelInput) -> Future[list[float | None]]:
        return self._executor.submit(prompt_logprobs, self._model, prompt.to_ints())

    def get_tokenizer(self) -> Any:
        return self._tokenizer

    def close(self) -> None:
        """Finish queued requests and stop the worker thread."""
        self._executor.shutdown(wait=True)

    def __enter__(self) -> LocalSamplingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sample(
        self, prompts: list[ModelInput], num_samples: int, params: SamplingParams
    ) -> SampleResponse:
        return self._sample_many(prompts, num_samples, params)[0]

    def _sample_together(
        self, requests: list[tuple[ModelInput, int, SamplingParams]]
    ) -> list[SampleResponse]:
        if not requests:
            return []
        first = batchable(*requests[0])
        if first is None or any(batchable(*r) != first for r in requests[1:]):
            raise ConfigError(
                "sample_together takes identical seeded or greedy calls: sample the others "
                "one by one"
            )
        prompt, num_samples, params = requests[0]
        return [self._sample([prompt], num_samples, params)] * len(requests)

    def _sample_many(
        self, prompts: list[ModelInput], num_samples: int, params: SamplingParams
    ) -> list[SampleResponse]:
        import torch

        check_params(params)
        if num_samples < 1:
            raise ConfigError(f"num_samples must be at least 1, got {num_samples}")
        rows = [p.to_ints() for p in prompts for _ in range(num_samples)]
        if not rows:
            return []
        if any(not row for row in rows):
            raise ConfigError("a prompt is empty: give every prompt at least one token")
        generator = self._stream
        if params.seed is not None:
            generator = torch.Generator(device=self._device).manual_seed(params.seed)
        stop = StopRule.from_params(params, self._tokenizer)
        sequences = generate(self._model, rows, params, stop, generator)
        return [
            SampleResponse(tuple(sequences[i : i + num_samples]))
            for i in range(0, len(sequences), num_samples)
        ]
