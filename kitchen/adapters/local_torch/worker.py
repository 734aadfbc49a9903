"""The one thread that runs torch in this process, shared by every local client.

torch's CPU kernels use an OpenMP thread team per calling thread. With the model loaded on
the main thread, training on one worker and sampling on another, three teams of busy-waiting
threads competed for the cores: a tiny model trained about 30 % slower than the same loop run
by hand. So all torch work — loading, training, sampling — goes through this single thread,
in submission order, which is also the order the TrainingClient contract promises.

Each client holds a :class:`Lane`: closing a client stops its own submissions and waits for
what it queued, without stopping the thread other clients share.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

R = TypeVar("R")
_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _torch_thread() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kitchen-torch")
        return _executor


def run(fn: Callable[..., R], *args: Any) -> R:
    """Run ``fn`` on the torch thread and wait for it (never call from that thread)."""
    return _torch_thread().submit(fn, *args).result()


class Lane:
    """One client's queue onto the shared torch thread."""

    def __init__(self) -> None:
        self._closed = False

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        return _torch_thread().submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        if wait:
            _torch_thread().submit(lambda: None).result()
