"""The data types every stage, port and backend speaks.

Names and shapes follow the ``tinker`` SDK (ModelInput, Datum, TensorData, AdamParams,
SamplingParams, ForwardBackwardOutput …) so that a Tinker adapter is a thin conversion and
tinker-cookbook users feel at home. They are plain frozen dataclasses: cheap on the hot path,
and importable without torch or numpy (tensor conversions import them lazily).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

LossFnType = Literal["cross_entropy", "importance_sampling", "ppo"]
DType = Literal["int64", "float32"]
StopReason = Literal["length", "stop"]


# --------------------------------------------------------------------------- model input


@dataclass(frozen=True, slots=True)
class EncodedTextChunk:
    """A run of token ids. (tinker also has image chunks; kitchen has none yet.)"""

    tokens: tuple[int, ...]

    @property
    def length(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True, slots=True)
class ModelInput:
    """What a model reads: a sequence of chunks, flattened to token ids by ``to_ints``."""

    chunks: tuple[EncodedTextChunk, ...] = ()

    @classmethod
    def from_ints(cls, tokens: Sequence[int]) -> ModelInput:
        return cls((EncodedTextChunk(tuple(int(t) for t in tokens)),))

    @classmethod
    def empty(cls) -> ModelInput:
        return cls(())

    def to_ints(self) -> list[int]:
        out: list[int] = []
        for chunk in self.chunks:
            out.extend(chunk.tokens)
        return out

    @property
    def length(self) -> int:
        return sum(c.length for c in self.chunks)

    def append_int(self, token: int) -> ModelInput:
        return self.append(EncodedTextChunk((int(token),)))

    def append(self, chunk: EncodedTextChunk) -> ModelInput:
        return ModelInput((*self.chunks, chunk))


# --------------------------------------------------------------------------- tensors


@dataclass(frozen=True, slots=True)
class TensorData:
    """A small dense tensor as plain data: flat values, a dtype name and a shape."""

    data: tuple[float, ...] | tuple[int, ...]
    dtype: DType
    shape: tuple[int, ...] | None = None

    @classmethod
    def from_list(cls, values: Sequence[float] | Sequence[int], dtype: DType) -> TensorData:
        conv: Callable[[Any], Any] = int if dtype == "int64" else float
        data = tuple(conv(v) for v in values)
        return cls(data, dtype, (len(data),))

    @classmethod
    def from_torch(cls, tensor: torch.Tensor) -> TensorData:
        import torch

        dtype: DType = "int64" if not torch.is_floating_point(tensor) else "float32"
        flat = tensor.detach().to("cpu").reshape(-1).tolist()
        return cls(tuple(flat), dtype, tuple(tensor.shape))

    @classmethod
    def from_numpy(cls, array: np.ndarray) -> TensorData:
        import numpy as np

        dtype: DType = "float32" if np.issubdtype(array.dtype, np.floating) else "int64"
        return cls(tuple(array.reshape(-1).tolist()), dtype, tuple(array.shape))

    def tolist(self) -> list[Any]:
        return list(self.data)

    def to_torch(self) -> torch.Tensor:
        import torch

        dt = torch.int64 if self.dtype == "int64" else torch.float32
        t = torch.tensor(self.data, dtype=dt)
        return t.reshape(self.shape) if self.shape is not None else t

    def to_numpy(self) -> np.ndarray:
        import numpy as np

        dt = np.int64 if self.dtype == "int64" else np.float32
        a = np.asarray(self.data, dtype=dt)
        return a.reshape(self.shape) if self.shape is not None else a


@dataclass(frozen=True, slots=True)
class Datum:
    """One training example: the input tokens and the loss function's per-token inputs.

    ``loss_fn_inputs`` keys, as in tinker: ``target_tokens`` (int64, same length as the
    input), ``weights`` (float32; 0 masks a position), and for RL losses ``logprobs`` (the
    sampler's) and ``advantages``.
    """

    model_input: ModelInput
    loss_fn_inputs: dict[str, TensorData] = field(default_factory=dict)


# --------------------------------------------------------------------------- optimiser / sampling


@dataclass(frozen=True, slots=True)
class AdamParams:
    """AdamW hyper-parameters of one optimizer step (tinker-cookbook's supervised defaults)."""

    learning_rate: float
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip_norm: float = 0.0  # 0 = no clipping


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1  # -1 = no top-k filtering
    stop: tuple[str, ...] | tuple[int, ...] | None = None
    seed: int | None = None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class ForwardBackwardOutput:
    """Per-datum loss outputs (``logprobs`` for every position, as TensorData) and scalar metrics.

    Metric keys follow tinker's ``name:reduction`` form, e.g. ``loss:sum``.
    """

    loss_fn_outputs: tuple[dict[str, TensorData], ...]
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class OptimStepResponse:
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SampledSequence:
    tokens: tuple[int, ...]
    logprobs: tuple[float, ...] | None
    stop_reason: StopReason


@dataclass(frozen=True, slots=True)
class SampleResponse:
    sequences: tuple[SampledSequence, ...]


@dataclass(frozen=True, slots=True)
class SavedState:
    """What ``save_state`` wrote: the folder and the training step it holds."""

    path: str
    step: int


# --------------------------------------------------------------------------- futures


class Future(Protocol[T_co]):
    """A submitted operation. ``result`` blocks until it is done and re-raises its error."""

    def result(self, timeout: float | None = None) -> T_co: ...

    def done(self) -> bool: ...


@dataclass(slots=True)
class CompletedFuture(Generic[T]):
    """A future that is already resolved (for synchronous implementations and tests)."""

    value: T

    def result(self, timeout: float | None = None) -> T:
        return self.value

    def done(self) -> bool:
        return True


# A concurrent.futures.Future satisfies the Future protocol; re-exported for adapters.
ThreadFuture = concurrent.futures.Future

CustomLossFn = Callable[
    [Sequence[Datum], Sequence["torch.Tensor"]], tuple["torch.Tensor", dict[str, float]]
]
"""``forward_backward_custom``'s loss: given the data and each datum's per-token target
logprobs (a tensor that carries gradients), return a scalar loss and metrics (tinker's shape)."""

__all__ = [
    "AdamParams",
    "CompletedFuture",
    "CustomLossFn",
    "DType",
    "Datum",
    "EncodedTextChunk",
    "ForwardBackwardOutput",
    "Future",
    "LossFnType",
    "ModelInput",
    "OptimStepResponse",
    "SampleResponse",
    "SampledSequence",
    "SamplingParams",
    "SavedState",
    "StopReason",
    "TensorData",
    "ThreadFuture",
]
