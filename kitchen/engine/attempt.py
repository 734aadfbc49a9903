"""An attempt's hold on its run: the lease, the signals that interrupt it, cancellation.

Only one worker drives a run at a time (the lease, renewed between stages); SIGINT asks the
attempt to stop after the stage in flight (a second SIGINT stops at once); SIGTERM and SIGUSR1
preempt it: it stops at the next step boundary with a checkpoint on record, within
``KITCHEN_GRACE_S`` (``kitchen.engine.preemption``); ``kitchen cancel`` leaves a request that
the attempt honours at its next check.

A database that cannot be reached when the lease is due for renewal is tolerated for half the
lease's time-to-live (the unit of work retries its commits for about as long); past that the
``StoreUnavailable`` ends the attempt as a fault. A lease left behind by an attempt that could
not release it (the database was gone) stops counting at once on the same host, because its
process no longer exists, and elsewhere when its time-to-live runs out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from types import FrameType

from kitchen.engine import preemption
from kitchen.errors import KitchenError, StoreUnavailable
from kitchen.ports import EventLog


class AttemptGuard:
    def __init__(
        self,
        store: EventLog,
        run_id: str,
        *,
        lease_ttl_s: float = 60.0,
        check_every_s: float = 5.0,
        handle_signals: bool = True,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.lease_ttl_s = lease_ttl_s
        self.check_every_s = check_every_s
        self.handle_signals = handle_signals
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.signal: str | None = None  # the name of the signal that asked us to stop
        self.preempted = False  # the signal was SIGTERM or SIGUSR1: checkpoint, then stop
        self.grace_s = preemption.grace_s() if handle_signals else 0.0
        self._last_check = 0.0
        self._renewed = time.monotonic()  # when the lease was last acquired or renewed

    # ------------------------------------------------------------------ the lease

    def acquire(self, attempt: int) -> None:
        self.store.acquire_lease(
            self.run_id,
            self.holder,
            host=socket.gethostname(),
            pid=os.getpid(),
            attempt=attempt,
            ttl_s=self.lease_ttl_s,
        )
        self._renewed = time.monotonic()

    def release(self) -> None:
        with contextlib.suppress(KitchenError):
            self.store.release_lease(self.run_id, self.holder)

    def cancel_requested(self) -> bool:
        """Every ``check_every_s``: renew the lease (losing it raises) and look for a cancel."""
        now = time.monotonic()
        if now - self._last_check < self.check_every_s:
            return False
        self._last_check = now
        try:
            self.store.renew_lease(self.run_id, self.holder, self.lease_ttl_s)
            cancel = bool(self.store.cancel_requested(self.run_id))
        except StoreUnavailable:
            if now - self._renewed < self.lease_ttl_s / 2:
                return False  # try again at the next check; the lease is still ours
            raise
        self._renewed = now
        return cancel

    def clear_cancel(self) -> None:
        self.store.clear_cancel(self.run_id)

    # ------------------------------------------------------------------ signals

    @property
    def interrupted(self) -> bool:
        return self.signal is not None

    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        """SIGINT, SIGTERM and SIGUSR1 ask for a stop while the attempt runs; the old handlers
        (and no watchdog) after."""
        if not self.handle_signals:
            yield
            return
        sigs = (signal.SIGINT, *preemption.SIGNALS)
        old = {sig: signal.signal(sig, self._on_signal) for sig in sigs}
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            preemption.reset()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if signum in preemption.SIGNALS:
            if self.signal is None or not self.preempted:
                self._preempt(name)
            return  # a scheduler repeats its signal (torchrun forwards it): nothing more to do
        if self.signal is not None:  # a second SIGINT: stop now
            raise KeyboardInterrupt
        self.signal = name
        print(
            f"kitchen: {self.signal} received; stopping after the current stage "
            "(send it again to stop at once)",
            file=sys.stderr,
        )

    def _preempt(self, name: str) -> None:
        self.signal, self.preempted = name, True
        preemption.begin(name, self.grace_s)
        print(
            f"kitchen: {name} received; preempted: the step in flight ends with a checkpoint, "
            f"then exit {preemption.EXIT_PREEMPTED} (within {self.grace_s:g}s, KITCHEN_GRACE_S)",
            file=sys.stderr,
        )
