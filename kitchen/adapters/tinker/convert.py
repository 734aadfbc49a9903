"""Thin conversion between kitchen's types and the SDK's (same names, same shapes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from kitchen import types as k
from kitchen.errors import TrainingDiverged


def model_input(value: k.ModelInput) -> Any:
    from tinker import types as t

    return t.ModelInput.from_ints(value.to_ints())


def tensor(value: k.TensorData) -> Any:
    from tinker import types as t

    shape = list(value.shape) if value.shape is not None else [len(value.data)]
    return t.TensorData(data=list(value.data), dtype=value.dtype, shape=shape)


def datum(value: k.Datum) -> Any:
    from tinker import types as t

    return t.Datum(
        model_input=model_input(value.model_input),
        loss_fn_inputs={name: tensor(v) for name, v in value.loss_fn_inputs.items()},
    )


def data(values: Sequence[k.Datum]) -> list[Any]:
    return [datum(v) for v in values]


def from_tensor(value: Any) -> k.TensorData:
    values = value.tolist()
    dtype: k.DType = "int64" if str(value.dtype) == "int64" else "float32"
    conv: Any = int if dtype == "int64" else float
    shape = tuple(value.shape) if value.shape is not None else (len(values),)
    return k.TensorData(tuple(conv(v) for v in values), dtype, shape)


def forward_output(value: Any, step: int) -> k.ForwardBackwardOutput:
    metrics = {name: float(v) for name, v in value.metrics.items()}
    loss = metrics.get("loss:sum")
    if loss is not None and not math.isfinite(loss):
        raise TrainingDiverged(f"step {step}: loss is {loss}")
    outputs = tuple(
        {name: from_tensor(v) for name, v in out.items()} for out in value.loss_fn_outputs
    )
    return k.ForwardBackwardOutput(outputs, metrics)


def adam(value: k.AdamParams) -> Any:
    from tinker import types as t

    return t.AdamParams(
        learning_rate=value.learning_rate,
        beta1=value.beta1,
        beta2=value.beta2,
        eps=value.eps,
        weight_decay=value.weight_decay,
        grad_clip_norm=value.grad_clip_norm,
    )


def sampling_params(value: k.SamplingParams) -> Any:
    from tinker import types as t

    return t.SamplingParams(
        max_tokens=value.max_tokens,
        temperature=value.temperature,
        top_p=value.top_p,
        top_k=value.top_k,
        stop=list(value.stop) if value.stop is not None else None,  # type: ignore[arg-type]
        seed=value.seed,
    )


def sample_response(value: Any) -> k.SampleResponse:
    return k.SampleResponse(
        tuple(
            k.SampledSequence(
                tuple(int(x) for x in s.tokens),
                tuple(float(x) for x in s.logprobs) if s.logprobs is not None else None,
                "stop" if s.stop_reason == "stop" else "length",
            )
            for s in value.sequences
        )
    )
