"""Kitchen futures over the SDK's: submission stays non-blocking, so a caller that submits
step N+1 before taking step N's result overlaps the two exactly as with the local backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kitchen.engine import faults
from kitchen.errors import ConfigError, ServiceUnavailable, TrainingDiverged

T = TypeVar("T")
S = TypeVar("S")


def translate(exc: BaseException, step: int | None = None) -> BaseException:
    """An SDK error as kitchen's: unreachable → ServiceUnavailable (the attempt ends
    resumable); refused by the service for the caller's input → ConfigError (one line); a
    non-finite loss input refused at ``step`` → TrainingDiverged naming the step."""
    import tinker

    if step is not None and isinstance(exc, tinker.BadRequestError) and "NaN" in str(exc):
        return TrainingDiverged(f"step {step}: the service refused a non-finite loss input")
    if isinstance(exc, tinker.APIConnectionError | ConnectionError):
        return ServiceUnavailable(f"the Tinker service is unreachable: {type(exc).__name__}")
    if isinstance(exc, tinker.AuthenticationError | tinker.PermissionDeniedError):
        return ConfigError("the Tinker service refused TINKER_API_KEY (401): check the key")
    if isinstance(exc, tinker.InternalServerError):
        return ServiceUnavailable(f"the Tinker service failed: {_one_line(exc)}")
    return exc


def _one_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


class Mapped(Generic[S, T]):
    """An SDK future (anything with ``result(timeout)``) whose value is converted once, on
    first ``result``; SDK errors are translated to kitchen's."""

    def __init__(self, inner: Any, convert: Callable[[S], T], step: int | None = None) -> None:
        self._inner, self._convert, self._step = inner, convert, step
        self._value: T | None = None
        self._has = False

    def result(self, timeout: float | None = None) -> T:
        if not self._has:
            try:
                faults.point("tinker:result")  # tests: the service unreachable here
                raw = self._inner.result(timeout)
            except Exception as exc:
                new = translate(exc, self._step)
                if new is exc:
                    raise
                raise new from exc
            self._value, self._has = self._convert(raw), True
        return self._value  # type: ignore[return-value]

    def done(self) -> bool:
        if self._has:
            return True
        fut = getattr(self._inner, "future", None)
        if callable(fut):
            return bool(fut().done())
        done = getattr(self._inner, "done", None)
        return bool(done()) if callable(done) else False


def identity(value: Any) -> Any:
    """No conversion: the SDK's value is what the caller wants (an SDK client)."""
    return value
