"""The unit of work: a run's events as the runner records them.

An event is folded into the in-memory ``RunState`` the moment it is recorded and reaches the
database at the next ``flush`` (group commit): the runner decides when, the unit of work only
keeps the buffer, the expected seq and the retries. A database that is briefly unreachable is
retried with backoff (0.5 s doubling to 8 s, 8 tries: about 30 s of waiting); one that stays
unreachable raises ``StoreUnavailable``, an infrastructure error: the runner ends the attempt
resumable (exit 75) without trying to write anything more.
"""

from __future__ import annotations

import time
from typing import Any

from kitchen import events as ev
from kitchen import faults
from kitchen.errors import NotFound, StoreUnavailable
from kitchen.state import Recorded, RunState, advance, fold

RETRIES = 8
FIRST_DELAY_S, MAX_DELAY_S = 0.5, 8.0


class UnitOfWork:
    def __init__(self, store: Any, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.state = RunState(run_id=run_id)
        self.committed_seq = 0
        self._owned: set[str] = set()  # dict fields of self.state that grow in place (advance)
        self._buffer: list[ev.Event] = []

    def record(self, event: ev.Event) -> int:
        """Add an event to the unit of work and fold it; returns its seq."""
        seq = self.state.last_seq + 1
        self._buffer.append(event)
        self.state = advance(self.state, Recorded(seq, None, event), self._owned)
        return seq

    def flush(self) -> None:
        """Commit what was recorded since the last flush, all or nothing."""
        if not self._buffer:
            return
        from kitchen.store import NewEvent

        batch = [NewEvent(e.type_name(), e.payload(), e.schema_version) for e in self._buffer]
        faults.point("flush:before")
        delay = FIRST_DELAY_S
        for attempt in range(RETRIES):
            try:
                self.store.append(self.run_id, batch, expected_seq=self.committed_seq)
                break
            except StoreUnavailable:
                if attempt == RETRIES - 1:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_S)
        self.committed_seq += len(batch)
        self._buffer.clear()
        faults.point("flush:after")

    def refold(self) -> RunState:
        """Forget what is in memory and fold the run's committed events again."""
        self.state = fold(self.run_id, self.load())
        self._owned = set()
        self._buffer.clear()
        self.committed_seq = self.state.last_seq
        return self.state

    def load(self) -> list[Recorded]:
        rows = self.store.read(self.run_id)
        if not rows:
            raise NotFound(
                f"no run {self.run_id!r} in {self.store.url_for_display}; see `kitchen runs`"
            )
        return [
            Recorded(r.seq, r.recorded_at, ev.decode(r.type, r.schema_version, r.payload))
            for r in rows
        ]
