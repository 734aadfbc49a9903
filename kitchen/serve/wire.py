"""The protobuf bodies, through the SDK's own generated messages (``tinker.proto``).

forward_backward's request and result, and asample's result, travel as protobuf: decoding and
encoding them by hand would drift from the SDK. Everything a client sends is checked here,
before it is logged, so a request that is on record is one the backend can run (token ids
aside, which the backend checks against the vocabulary and fails the future with).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from kitchen.serve.errors import bad_request
from kitchen.types import (
    Datum,
    EncodedTextChunk,
    ForwardBackwardOutput,
    ModelInput,
    SampleResponse,
    TensorData,
)

LOSS_INPUTS = {
    "cross_entropy": ("target_tokens", "weights"),
    "importance_sampling": ("target_tokens", "logprobs", "advantages"),
    "ppo": ("target_tokens", "logprobs", "advantages"),
}
INT_KEYS = frozenset({"target_tokens"})


_PB: Any = None


def _pb() -> Any:
    global _PB
    if _PB is None:
        from tinker.proto import tinker_public_pb2

        _PB = tinker_public_pb2
    return _PB


_DTYPES: dict[int, Any] = {}


def _dtype_of(code: int) -> Any:
    if not _DTYPES:
        pb = _pb()
        _DTYPES.update(
            {pb.DTYPE_FLOAT32: np.float32, pb.DTYPE_INT64: np.int64, pb.DTYPE_INT32: np.int32}
        )
    return _DTYPES.get(code)


@dataclass(frozen=True, slots=True)
class FwdBwd:
    model_id: str
    seq_id: int
    loss_fn: str
    loss_fn_config: dict[str, float]
    forward_only: bool
    data: list[Datum]


def decode_forward_backward(body: bytes, *, max_datums: int, max_tokens: int) -> FwdBwd:
    """Parse and check a ForwardBackwardRequest; one clear 400 for anything off."""
    from google.protobuf.message import DecodeError

    msg = _pb().ForwardBackwardRequest()
    try:
        msg.ParseFromString(body)
    except (DecodeError, ValueError):
        raise bad_request("forward_backward body is not a ForwardBackwardRequest") from None
    if msg.loss_fn not in LOSS_INPUTS:
        raise bad_request(
            f"loss_fn {msg.loss_fn[:40]!r} is not supported here: use one of "
            f"{', '.join(sorted(LOSS_INPUTS))} (or forward_backward_custom)"
        )
    if any(v.WhichOneof("value") == "text" for v in msg.loss_fn_config_v2.values()):
        raise bad_request("loss_fn_config takes numbers only here")
    config = {k: float(v) for k, v in msg.loss_fn_config.items()}
    if not 1 <= len(msg.data) <= max_datums:
        raise bad_request(f"forward_backward takes 1 to {max_datums} datums, got {len(msg.data)}")
    data: list[Datum] = []
    total = 0
    for i, d in enumerate(msg.data):
        datum = _datum(i, d, LOSS_INPUTS[msg.loss_fn])
        total += datum.model_input.length
        if total > max_tokens:
            raise bad_request(f"forward_backward batch holds more than {max_tokens} tokens")
        data.append(datum)
    return FwdBwd(msg.model_id, msg.seq_id, msg.loss_fn, config, msg.forward_only, data)


def _datum(i: int, d: Any, keys: tuple[str, ...]) -> Datum:
    # Decoding runs on the event loop, which shares the interpreter lock with the torch
    # thread: a step's batch is decoded with as few Python-level calls as the checks allow.
    tokens: list[int] = []
    for chunk in d.model_input:
        if chunk.WhichOneof("chunk") != "encoded_text":
            raise bad_request(f"datum {i}: only token (encoded_text) chunks are supported")
        tokens += _frombuffer(chunk.encoded_text.tokens, np.int32, f"datum {i} tokens").tolist()
    if not tokens:
        raise bad_request(f"datum {i} has an empty model_input")
    n = len(tokens)
    given = d.loss_fn_inputs
    inputs: dict[str, TensorData] = {}
    for key in keys:
        if key not in given:
            raise bad_request(f"datum {i} lacks loss_fn_inputs[{key!r}]")
        values = _tensor(given[key], f"datum {i} {key}")
        if values.size != n:
            raise bad_request(
                f"datum {i}: loss_fn_inputs[{key!r}] has {values.size} values for {n} tokens"
            )
        listed = values.tolist()
        if key in INT_KEYS:
            if values.dtype.kind != "i":
                listed = [int(v) for v in listed]
            inputs[key] = TensorData(tuple(listed), "int64", (n,))
        else:
            if not all(map(math.isfinite, listed)):
                raise bad_request(f"datum {i}: loss_fn_inputs[{key!r}] holds NaN or infinity")
            inputs[key] = TensorData(tuple(listed), "float32", (n,))
    return Datum(ModelInput((EncodedTextChunk(tuple(tokens)),)), inputs)


def _frombuffer(raw: bytes, dtype: Any, what: str) -> np.ndarray:
    if len(raw) % np.dtype(dtype).itemsize:
        raise bad_request(f"{what}: byte length is not a multiple of the element size")
    return np.frombuffer(raw, dtype=dtype)


def _tensor(msg: Any, what: str) -> np.ndarray:
    """A proto Tensor as a flat numpy array (sparse CSR densified with zeros)."""
    dtype = _dtype_of(msg.dtype)
    if dtype is None:
        raise bad_request(f"{what}: unsupported dtype {msg.dtype}")
    shape = list(msg.shape)
    if msg.HasField("sparse_csr"):
        if len(shape) != 2 or min(shape) < 0 or shape[0] * shape[1] > 10_000_000:
            raise bad_request(f"{what}: a sparse tensor needs a sane 2-D shape")
        values = _frombuffer(msg.sparse_csr.values, dtype, what)
        crow = _frombuffer(msg.sparse_csr.crow_indices, np.int64, what)
        col = _frombuffer(msg.sparse_csr.col_indices, np.int64, what)
        ok = (
            len(crow) == shape[0] + 1
            and len(col) == len(values)
            and crow[0] == 0
            and crow[-1] == len(values)
            and bool((np.diff(crow) >= 0).all())
            and bool(((col >= 0) & (col < shape[1])).all())
        )
        if not ok:
            raise bad_request(f"{what}: invalid sparse CSR indices")
        dense = np.zeros(shape, dtype=dtype)
        rows = np.repeat(np.arange(shape[0]), np.diff(crow))
        dense[rows, col] = values
        return dense.reshape(-1)
    values = _frombuffer(msg.dense, dtype, what)
    if shape and math.prod(shape) != values.size:
        raise bad_request(f"{what}: shape {shape} does not match {values.size} values")
    return values


def encode_forward_backward(out: ForwardBackwardOutput) -> bytes:
    """One ArrayRecord holding every datum's ``logprobs``, and the metrics."""
    pb = _pb()
    msg = pb.ForwardBackwardOutput(loss_fn_output_type="ArrayRecord")
    for key, value in out.metrics.items():
        msg.metrics[key] = float(value)
    record = msg.loss_fn_outputs.add(type_tag="ArrayRecord", num_datums=len(out.loss_fn_outputs))
    rows = [np.asarray(o["logprobs"].data, dtype=np.float32) for o in out.loss_fn_outputs]
    offsets = np.cumsum([0, *(r.nbytes for r in rows)], dtype=np.int64)
    field = record.fields["logprobs"]
    field.data = b"".join(r.tobytes() for r in rows)
    field.offsets = offsets.tobytes()
    field.dtype = pb.DTYPE_FLOAT32
    return bytes(msg.SerializeToString())


def encode_sample(resp: SampleResponse, prompt_logprobs: list[float | None] | None) -> bytes:
    pb = _pb()
    msg = pb.SampleResponse()
    for seq in resp.sequences:
        s = msg.sequences.add()
        s.stop_reason = pb.STOP_REASON_STOP if seq.stop_reason == "stop" else pb.STOP_REASON_LENGTH
        s.tokens = np.asarray(seq.tokens, dtype=np.int32).tobytes()
        if seq.logprobs is not None:
            s.logprobs = np.asarray(seq.logprobs, dtype=np.float32).tobytes()
    if prompt_logprobs is not None:
        values = [float("nan") if v is None else v for v in prompt_logprobs]
        msg.prompt_logprobs = np.asarray(values, dtype=np.float32).tobytes()
    return bytes(msg.SerializeToString())
