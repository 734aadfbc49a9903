"""TinkerTrainingClient: the TrainingClient port over an SDK training client.

Every call submits to the SDK and returns at once; the SDK orders a model's requests, so a
caller's submit-ahead pipelining overlaps work as on the local backend. States live on the
service: ``save_state`` returns its ``tinker://`` reference, whose name carries the step
(``…/step-000004-…``) so that ``load_state`` knows the step it restored.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kitchen.adapters.tinker import convert, weights
from kitchen.adapters.tinker.futures import Mapped
from kitchen.adapters.tinker.sampling import TinkerSamplingClient
from kitchen.errors import ConfigError
from kitchen.types import (
    AdamParams,
    CustomLossFn,
    Datum,
    ForwardBackwardOutput,
    Future,
    LossFnType,
    ModelInput,
    OptimStepResponse,
    SavedState,
)

_STEP = re.compile(r"/step-(\d+)(?:-[0-9a-f]+)?$")


def step_of(reference: str) -> int:
    """The step a ``tinker://`` state reference written by this adapter holds."""
    found = _STEP.search(reference)
    if found is None:
        raise ConfigError(f"{reference} was not saved by kitchen: its step is unknown")
    return int(found.group(1))


class TinkerTrainingClient:
    def __init__(self, sdk: Any, rest: Any, on_sampler_saved: Any = None) -> None:
        self._sdk, self._rest = sdk, rest
        self._step = 0
        self._tokenizer: Any = None
        self._on_sampler_saved = on_sampler_saved
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="kitchen-tinker")

    @property
    def step(self) -> int:
        return self._step

    def forward_backward(
        self,
        data: Sequence[Datum],
        loss_fn: LossFnType = "cross_entropy",
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]:
        step = self._step
        inner = self._sdk.forward_backward(
            convert.data(data), loss_fn, dict(loss_fn_config) if loss_fn_config else None
        )
        return Mapped(inner, lambda v: convert.forward_output(v, step))

    def forward(
        self, data: Sequence[Datum], loss_fn: LossFnType = "cross_entropy"
    ) -> Future[ForwardBackwardOutput]:
        step = self._step
        inner = self._sdk.forward(convert.data(data), loss_fn)
        return Mapped(inner, lambda v: convert.forward_output(v, step))

    def forward_backward_custom(
        self, data: Sequence[Datum], loss_fn: CustomLossFn
    ) -> Future[ForwardBackwardOutput]:
        """The SDK linearises the loss on the client; kitchen's loss sees kitchen's data."""
        ours = list(data)
        step = self._step

        def loss(_sdk_data: Any, logprobs: Any) -> Any:
            return loss_fn(ours, logprobs)

        inner = self._sdk.forward_backward_custom(convert.data(ours), loss)
        return Mapped(inner, lambda v: convert.forward_output(v, step))

    def optim_step(self, adam_params: AdamParams) -> Future[OptimStepResponse]:
        inner = self._sdk.optim_step(convert.adam(adam_params))
        self._step += 1
        return Mapped(inner, lambda v: OptimStepResponse({k: float(x) for k, x in v.metrics.items()}))

    def save_state(self, path: str | Path) -> Future[SavedState]:
        """Saved on the service; the local folder stays empty (the stage records the reference)."""
        step = self._step
        name = f"step-{step:06d}-{secrets.token_hex(3)}"
        inner = self._sdk.save_state(name)
        return Mapped(inner, lambda v: SavedState(str(v.path), step))

    def load_state(self, path: str | Path, with_optimizer: bool = True) -> Future[SavedState]:
        reference = str(path)
        if not reference.startswith("tinker://"):
            raise ConfigError(
                f"the tinker adapter loads tinker:// states only, not the local folder {reference}"
            )
        step = step_of(reference)
        if with_optimizer:
            inner = self._sdk.load_state_with_optimizer(reference)
        else:
            inner = self._sdk.load_state(reference)
            step = 0
        self._step = step
        return Mapped(inner, lambda _v: SavedState(reference, step))

    def save_weights_for_sampler(self, path: str | Path) -> Future[str]:
        """The weights as a local PEFT adapter in ``path``: exported through the service's
        external weights; a sampler copy on the service lets a sampling client use it."""
        folder = Path(path)
        tag = f"step-{self._step:06d}-{secrets.token_hex(3)}"
        external = self._sdk.save_weights_external(tag)
        sampler = self._sdk.save_weights_for_sampler(tag)

        def fetch() -> str:
            ext_path = Mapped(external, lambda v: str(v.path)).result()
            folder.mkdir(parents=True, exist_ok=True)
            weights.download(self._rest, ext_path, folder)
            sampler_path = Mapped(sampler, lambda v: str(v.path)).result()
            if self._on_sampler_saved is not None:
                self._on_sampler_saved(folder, sampler_path)
            return str(folder)

        return self._pool.submit(fetch)

    def sampling_client(self) -> TinkerSamplingClient:
        sdk = Mapped(self._sdk.save_weights_and_get_sampling_client(), lambda v: v).result()
        return TinkerSamplingClient(sdk, self.get_tokenizer())

    def get_tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = self._sdk.get_tokenizer()
        return self._tokenizer

    def compute_logprobs(self, prompt: ModelInput) -> Future[list[float | None]]:
        return self.sampling_client().compute_logprobs(prompt)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
