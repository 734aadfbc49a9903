"""Preemption: SIGTERM or SIGUSR1 end the attempt at the next step boundary, with a checkpoint.

A scheduler that takes a node back (SLURM's requeue, preemption or ``--signal``, Kubernetes'
pod deletion) sends SIGTERM, or a chosen signal, some time before it kills the job. The
attempt then finishes the step in flight, saves a *preemption* checkpoint of it (unless one of
that step is on record) and exits with ``EXIT_PREEMPTED``; running the same command again
carries on from that checkpoint, re-executing nothing.

A Python handler cannot interrupt a torch operation that is running, so a watchdog thread ends
the process ``grace_s()`` after the signal whatever it is doing: only the steps after the
newest checkpoint are lost then, and the next attempt re-executes them.

This module is torch-free and holds only process-wide facts: the signal that asked for the
stop, the watchdog, and whether a preemption checkpoint is being written (the training client
skips the cross-process digest then: a peer may already be gone).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

EXIT_PREEMPTED = 143
"""128 + SIGTERM: the attempt ended because it was asked to give its node back."""

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
TORCHRUN_KILL_AFTER_S = 30.0
"""torchrun forwards SIGTERM to its workers and kills them this long after."""
_TORCHRUN_MARGIN_S = 5.0

_lock = threading.Lock()
_signal: str | None = None
_timer: threading.Timer | None = None
_saving = False


def grace_s() -> float:
    """``KITCHEN_GRACE_S`` (default 25 s), capped below torchrun's 30 s under torchrun."""
    from kitchen.settings import current

    grace = float(current().grace_s)
    if "TORCHELASTIC_RUN_ID" in os.environ:
        grace = min(grace, TORCHRUN_KILL_AFTER_S - _TORCHRUN_MARGIN_S)
    return grace


def requested() -> str | None:
    """The name of the signal that asked this process to give its node back, if any."""
    return _signal


def begin(signame: str, grace: float, on_deadline: Callable[[], None] | None = None) -> bool:
    """Note a preemption signal and arm the watchdog; False if one was noted already."""
    global _signal, _timer
    with _lock:
        if _signal is not None:
            return False
        _signal = signame
        _timer = threading.Timer(grace, _deadline, args=(signame, grace, on_deadline))
        _timer.daemon = True
        _timer.start()
        return True


def _deadline(signame: str, grace: float, on_deadline: Callable[[], None] | None) -> None:
    print(
        f"kitchen: {signame}: no checkpoint on record {grace:g}s after the signal "
        f"(KITCHEN_GRACE_S); exiting {EXIT_PREEMPTED}: the next attempt re-executes the steps "
        "after the newest checkpoint",
        file=sys.stderr,
        flush=True,
    )
    if on_deadline is not None:
        with contextlib.suppress(Exception):
            on_deadline()
    os._exit(EXIT_PREEMPTED)


def reset() -> None:
    """Disarm the watchdog and forget the signal (the attempt ended in time)."""
    global _signal, _timer
    with _lock:
        if _timer is not None:
            _timer.cancel()
        _signal, _timer = None, None


@contextlib.contextmanager
def saving() -> Iterator[None]:
    """Around the writing of a preemption checkpoint."""
    global _saving
    _saving = True
    try:
        yield
    finally:
        _saving = False


def saving_now() -> bool:
    return _saving


@contextlib.contextmanager
def following() -> Iterator[None]:
    """A follower (a rank other than 0) takes no decision of its own on a signal: rank 0 ends
    the attempt for every process. It notes a preemption signal (so its watchdog runs) and
    otherwise ignores SIGINT, SIGTERM and SIGUSR1, which torchrun forwards to every worker."""

    grace = grace_s()

    def note(signum: int, frame: FrameType | None) -> None:
        if signum in SIGNALS:
            begin(signal.Signals(signum).name, grace)

    sigs = (signal.SIGINT, *SIGNALS)
    old = {sig: signal.signal(sig, note) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        reset()


__all__ = [
    "EXIT_PREEMPTED",
    "SIGNALS",
    "TORCHRUN_KILL_AFTER_S",
    "begin",
    "following",
    "grace_s",
    "requested",
    "reset",
    "saving",
    "saving_now",
]
