"""Out of memory, said in one line: what ran out and what setting to lower.

The allocators fail in three ways — ``torch.OutOfMemoryError`` on CUDA, a ``RuntimeError``
naming ``DefaultCPUAllocator`` on CPU, and Python's own ``MemoryError`` — and each carries a
long, low-level message. Every operation the local backend queues runs through
:func:`guarded`, which turns all three into :class:`kitchen.errors.OutOfMemory` with the hint
of the client that queued it (for training: ``max_tokens_per_microbatch`` and gradient
checkpointing), so a run ends with one line a user can act on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from kitchen.errors import OutOfMemory

R = TypeVar("R")

LOAD_HINT = "use a smaller model, dtype=bfloat16, or a machine with more memory"
SAMPLE_HINT = "sample fewer prompts or fewer tokens per call"


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (CUDA)
        return True
    return isinstance(exc, RuntimeError) and (
        "DefaultCPUAllocator" in str(exc) or "CUDA out of memory" in str(exc)
    )


def guarded(fn: Callable[..., R], hint: str | Callable[[], str]) -> Callable[..., R]:
    """``fn``, with an allocator failure raised as ``OutOfMemory`` (the rest unchanged)."""

    @functools.wraps(fn)
    def run(*args: Any) -> R:
        try:
            return fn(*args)
        except OutOfMemory:
            raise
        except BaseException as exc:
            if not is_out_of_memory(exc):
                raise
            _release()
            what = getattr(fn, "__name__", "operation").strip("_").replace("_", " ")
            advice = hint() if callable(hint) else hint
            raise OutOfMemory(f"out of memory in {what} ({_summary(exc)}): {advice}") from exc

    return run


def _summary(exc: BaseException) -> str:
    """The allocator's own words, cut to what fits in one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "tried to allocate" in text.lower():
        start = text.lower().index("tried to allocate")
        text = text[start:].split(".")[0].split(";")[0]
    return text[:120]


def _release() -> None:
    """Give the cached CUDA blocks back, so the process can carry on (a served model does)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
