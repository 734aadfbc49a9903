"""TinkerTrainingClient: the TrainingClient port over an SDK training client.

Every call submits to the SDK and returns at once; the SDK orders a model's requests, so a
caller's submit-ahead pipelining overlaps work as on the local backend. States live on the
service: ``save_state`` returns its ``tinker://`` reference, whose name carries the step
(``…/step-000004``) so that ``load_state`` knows the step it restored, and writes the same
reference into the local folder it was given (``tinker_state.json``), so the folder can be
loaded too. Loading makes a fresh SDK client from the state, as the SDK asks.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import secrets
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kitchen.adapters.tinker import convert, weights
from kitchen.adapters.tinker.futures import Mapped, identity
from kitchen.adapters.tinker.sampling import TinkerSamplingClient
from kitchen.errors import ConfigError, TrainingDiverged
from kitchen.paths import checkpoint_name
from kitchen.types import (
    AdamParams,
    CompletedFuture,
    CustomLossFn,
    Datum,
    ForwardBackwardOutput,
    Future,
    LossFnType,
    ModelInput,
    OptimStepResponse,
    SavedState,
    ThreadFuture,
)

_STEP = re.compile(r"/step-(\d+)$")
STATE_FILE = "tinker_state.json"


def step_of(reference: str) -> int:
    """The step a ``tinker://`` state reference written by this adapter holds."""
    found = _STEP.search(reference)
    if found is None:
        raise ConfigError(f"{reference} was not saved by kitchen: its step is unknown")
    return int(found.group(1))


class TinkerTrainingClient:
    def __init__(
        self,
        service: Any,
        sdk: Any,
        rest: Any,
        tokenizer: Any,
        on_sampler_saved: Any = None,
    ) -> None:
        self._service, self._sdk, self._rest = service, sdk, rest
        self._tokenizer = tokenizer
        self._saved: dict[int, tuple[Any, list[Path], set[Path]]] = {}
        # step -> (the SDK's save, the folders asked for, those written)
        self._writing = threading.Lock()
        self._step = 0
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
        refused = _non_finite(data, step)
        if refused is not None:
            return refused
        inner = self._sdk.forward_backward(
            convert.data(data), loss_fn, dict(loss_fn_config) if loss_fn_config else None
        )
        return Mapped(inner, lambda v: convert.forward_output(v, step), step)

    def forward(
        self, data: Sequence[Datum], loss_fn: LossFnType = "cross_entropy"
    ) -> Future[ForwardBackwardOutput]:
        step = self._step
        refused = _non_finite(data, step)
        if refused is not None:
            return refused
        inner = self._sdk.forward(convert.data(data), loss_fn)
        return Mapped(inner, lambda v: convert.forward_output(v, step), step)

    def forward_backward_custom(
        self, data: Sequence[Datum], loss_fn: CustomLossFn
    ) -> Future[ForwardBackwardOutput]:
        """The SDK linearises the loss on the client; kitchen's loss sees kitchen's data."""
        ours = list(data)
        step = self._step

        def loss(_sdk_data: Any, logprobs: Any) -> Any:
            return loss_fn(ours, logprobs)

        inner = self._sdk.forward_backward_custom(convert.data(ours), loss)
        return Mapped(inner, lambda v: convert.forward_output(v, step), step)

    def optim_step(self, adam_params: AdamParams) -> Future[OptimStepResponse]:
        inner = self._sdk.optim_step(convert.adam(adam_params))
        self._step += 1
        self._saved = {}
        return Mapped(inner, _optim_response)

    def save_state(self, path: str | Path) -> Future[SavedState]:
        """Saved on the service, once per step of this client (the same state twice is the
        same reference); the reference is also written into the local folder ``path``."""
        step = self._step
        if step not in self._saved:
            self._saved[step] = (self._sdk.save_state(checkpoint_name(step)), [], set())
        inner, folders, written = self._saved[step]
        folders.append(Path(path))

        def done(v: Any) -> SavedState:
            # Every future of this state writes the folders not yet written, one at a time,
            # so that a folder is complete once any of them has resolved, and never rewritten.
            reference = str(v.path)
            text = json.dumps({"reference": reference, "step": step}, sort_keys=True) + "\n"
            with self._writing:
                for folder in [f for f in folders if f not in written]:
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / STATE_FILE).write_text(text, encoding="utf-8")
                    written.add(folder)
            return SavedState(reference, step)

        saved = Mapped(inner, done)
        _eagerly(inner, saved)
        return saved

    def load_state(self, path: str | Path, with_optimizer: bool = True) -> Future[SavedState]:
        """A ``tinker://`` state, or a folder ``save_state`` wrote its reference into. The SDK
        loads a state into a new training client; this client continues on that one."""
        reference = str(path)
        local = Path(path) / STATE_FILE
        if "://" not in reference and local.is_file():
            reference = str(json.loads(local.read_text(encoding="utf-8"))["reference"])
        if not reference.startswith("tinker://"):
            raise ConfigError(
                f"the tinker adapter loads tinker:// states only, not the local folder {reference}"
            )
        step = step_of(reference)
        if with_optimizer:
            made = self._service.create_training_client_from_state_with_optimizer(reference)
        else:
            made = self._service.create_training_client_from_state(reference)
            step = 0
        self._sdk = Mapped(made, identity).result()
        self._step, self._saved = step, {}
        return CompletedFuture(SavedState(reference, step))

    def save_weights_for_sampler(self, path: str | Path) -> Future[str]:
        """The weights as a local PEFT adapter in ``path``: exported through the service's
        external weights; a sampler copy on the service lets a sampling client use it."""
        folder = Path(path)
        tag = checkpoint_name(self._step, secrets.token_hex(3))
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
        sdk = Mapped(self._sdk.save_weights_and_get_sampling_client(), identity).result()
        return TinkerSamplingClient(sdk, self._tokenizer)

    def get_tokenizer(self) -> Any:
        return self._tokenizer

    def compute_logprobs(self, prompt: ModelInput) -> Future[list[float | None]]:
        return self.sampling_client().compute_logprobs(prompt)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _non_finite(data: Sequence[Datum], step: int) -> Future[ForwardBackwardOutput] | None:
    """A NaN or infinite loss input diverges the step here, before it is sent: the service
    would refuse the request, and a refused request must not take a place in the order."""
    for datum in data:
        for tensor in datum.loss_fn_inputs.values():
            if tensor.dtype == "float32" and not all(math.isfinite(v) for v in tensor.data):
                failed: ThreadFuture[ForwardBackwardOutput] = ThreadFuture()
                failed.set_exception(TrainingDiverged(f"step {step}: a loss input is not finite"))
                return failed
    return None


def _eagerly(inner: Any, mapped: Mapped[Any, Any]) -> None:
    """Run ``mapped``'s conversion as soon as the SDK's future is done, awaited or not (the
    local reference file of a state must exist even if nobody asks for the result)."""

    def convert(_done: Any) -> None:
        # The caller's own result() re-raises what failed here.
        with contextlib.suppress(Exception):
            mapped.result()

    inner.future().add_done_callback(convert)


def _optim_response(value: Any) -> OptimStepResponse:
    return OptimStepResponse({str(k): float(x) for k, x in value.metrics.items()})
