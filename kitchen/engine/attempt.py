"""An attempt's hold on its run: the lease, the signals that interrupt it, cancellation.

Only one worker drives a run at a time (the lease, renewed between stages); SIGINT/SIGTERM ask
the attempt to stop after the stage in flight (a second signal stops at once); ``kitchen
cancel`` leaves a request that the attempt honours at its next check.

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
        """SIGINT and SIGTERM ask for a stop while the attempt runs; the old handlers after."""
        if not self.handle_signals:
            yield
            return
        old = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
        print(
            f"kitchen: {self.signal} received; stopping after the current stage "
            "(send it again to stop at once)",
            file=sys.stderr,
        )
