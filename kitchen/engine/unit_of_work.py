"""The unit of work: a run's events as the runner records them.

An event is folded into the in-memory ``RunState`` the moment it is recorded and reaches the
database at the next ``flush`` (group commit). When to commit is decided here and nowhere
else: the runner says what happened (an attempt began, a stage started or ended, the attempt
ended) and the commit-policy methods below commit at exactly the points ``kitchen.engine.runner``'s
docstring lists, and fire the ``stage:<name>:before`` and ``stage:<name>:after`` fault points.
At a step boundary ``flush_due`` commits only once the commit window
(``KITCHEN_COMMIT_WINDOW_MS``, default 50 ms) has passed since the last commit, so steps faster
than that share a commit; everything else (a stage with side effects, an artifact, the end of
an attempt) commits at once. A database that is briefly unreachable is
retried with backoff (0.5 s doubling to 8 s, 8 tries: about 30 s of waiting); one that stays
unreachable raises ``StoreUnavailable``, an infrastructure error: the runner ends the attempt
resumable (exit 75) without trying to write anything more.

Snapshots: the state is folded from the newest snapshot and the events after it
(``kitchen.engine.snapshots``), and after a commit the unit of work writes a new snapshot when its
policy says one is due. Its state is then the fold of the committed events exactly: the
batch's time, known only once the store has written it, is put in with ``state.stamp``.
Writing a snapshot is an optimisation: if it fails, the run goes on without it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable

from kitchen.engine import events as ev
from kitchen.engine import faults
from kitchen.engine import snapshots as snap
from kitchen.engine.state import Recorded, RunState, advance, fold, stamp
from kitchen.errors import KitchenError, StoreUnavailable
from kitchen.ports import EventLog

log = logging.getLogger(__name__)

RETRIES = 8
FIRST_DELAY_S, MAX_DELAY_S = 0.5, 8.0


WINDOW_ENV = "KITCHEN_COMMIT_WINDOW_MS"


def window_from_env() -> float:
    """``KITCHEN_COMMIT_WINDOW_MS`` in seconds (0: every step commits), or the default."""
    from kitchen.settings import current

    return current().commit_window_ms / 1000


class UnitOfWork:
    def __init__(
        self,
        store: EventLog,
        run_id: str,
        snapshots: snap.Policy | None = None,
        window_s: float = 0.0,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.state = RunState(run_id=run_id)
        self.committed_seq = 0
        self.snapshots = snapshots or snap.Policy()
        self.snapshot_seq = 0  # seq of the newest snapshot this unit of work knows of
        self._owned: set[str] = set()  # dict fields of self.state that grow in place (advance)
        self._buffer: list[ev.Event] = []
        self.window_s = window_s  # see flush_due
        self._committed_at = -math.inf  # time.monotonic() of the last commit
        # When a list, every recorded event is also appended here, for whoever takes them
        # (rank 0 sends them to the other processes of the run: kitchen.engine.distributed).
        self.tail: list[tuple[int, ev.Event]] | None = None

    def record(self, event: ev.Event) -> int:
        """Add an event to the unit of work and fold it; returns its seq."""
        seq = self.state.last_seq + 1
        self._buffer.append(event)
        self.state = advance(self.state, Recorded(seq, None, event), self._owned)
        if self.tail is not None:
            self.tail.append((seq, event))
        return seq

    # ------------------------------------------------------------------ commit policy

    def begin_attempt(self, *events: ev.Event) -> None:
        """An attempt's opening events, committed together before it does anything else (a
        ``ConcurrencyConflict`` here means another worker wrote first)."""
        for event in events:
            self.record(event)
        self.flush()

    def stage_started(self, started: ev.StageStarted, *, hot: bool, step_head: bool) -> int:
        """Record that a stage starts; returns the event's seq.

        The first ``hot`` stage of a step is a step boundary: the previous step's events go in
        one commit (or wait for the commit window). A stage that is not ``hot`` is on record,
        with everything before it, before it begins its side effects."""
        if hot and step_head:
            self.flush_due()
        seq = self.record(started)
        if not hot:
            self.flush()
        faults.point(f"stage:{started.stage}:before")
        return seq

    def stage_events(self, events: Iterable[ev.Event]) -> None:
        """The events a stage returned beside its ``StageCompleted``: a checkpoint's record is
        committed only after the stage's own events, so it never names a step not on record."""
        for event in events:
            if isinstance(event, ev.CheckpointSaved):
                self.flush()
            self.record(event)

    def stage_ended(self, stage: str, *, hot: bool, durable: bool) -> None:
        """A stage's events are all recorded: a stage that is not ``hot``, or one that made
        something ``durable`` (artifacts, effects to run after the commit), commits now, so an
        artifact is on record before anything is built on it; a ``hot`` one waits for its step."""
        faults.point(f"stage:{stage}:after")
        if not hot or durable:
            self.flush()

    def end_attempt(self, event: ev.Event) -> None:
        """How the attempt ended (completed, failed, interrupted, cancelled): always committed."""
        self.record(event)
        self.flush()

    def end_after_fault(self, event: ev.Event, *, store_gone: bool) -> bool:
        """A fault outside the run ended the attempt: ``event`` is recorded in memory at least
        and committed if the log can still be written; returns whether it was. When the store
        is what is gone (``store_gone``) nothing is tried: its retry budget is spent."""
        self.record(event)
        if store_gone:
            return False
        try:
            self.flush()
        except KitchenError:
            return False
        return True

    # ------------------------------------------------------------------ commits

    def flush_due(self) -> None:
        """A step boundary: commit what was recorded, unless the last commit was less than
        ``window_s`` ago. Group commit across steps: a step slower than the window commits
        at every boundary as before; faster steps share one commit per window, so a kill
        loses at most the steps of the last window (which a resume re-executes anyway)."""
        if self._buffer and time.monotonic() - self._committed_at >= self.window_s:
            self.flush()

    def flush(self) -> None:
        """Commit what was recorded since the last flush, all or nothing."""
        if not self._buffer:
            return
        from kitchen.log_records import NewEvent

        batch = [NewEvent(e.type_name(), e.payload(), e.schema_version) for e in self._buffer]
        faults.point("flush:before")
        delay = FIRST_DELAY_S
        for attempt in range(RETRIES):
            try:
                stored = self.store.append(self.run_id, batch, expected_seq=self.committed_seq)
                break
            except StoreUnavailable:
                if attempt == RETRIES - 1:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_S)
        self._committed_at = time.monotonic()
        first = self.committed_seq + 1
        self.committed_seq += len(batch)
        self.state = stamp(self.state, first, stored[-1].recorded_at, self._buffer)
        milestone = any(isinstance(e, snap.MILESTONES) for e in self._buffer)
        self._buffer.clear()
        faults.point("flush:after")
        self._snapshot_if_due(milestone)

    def _snapshot_if_due(self, milestone: bool) -> None:
        since = self.committed_seq - self.snapshot_seq
        if not self.snapshots.due(since, milestone):
            return
        assert self.state.last_seq == self.committed_seq and not self._buffer
        try:
            snap.save(self.store, self.state)
        except (KitchenError, ValueError, TypeError) as exc:
            # A cache: a run that cannot write one goes on, and folds more on its next resume.
            log.warning(
                "kitchen: no snapshot of run %s at seq %s: %s", self.run_id, self.committed_seq, exc
            )
            return
        self.snapshot_seq = self.committed_seq

    def refold(self) -> RunState:
        """Forget what is in memory and fold the run's committed events again: from the newest
        snapshot that verifies, and the events after it. When that left many events to fold
        (no snapshot yet, or only one of an older fold), a new snapshot is written at once."""
        loaded = snap.load(self.store, self.run_id)
        self.state = loaded.state
        self._owned = set()
        self._buffer.clear()
        self.committed_seq = self.state.last_seq
        self.snapshot_seq = loaded.from_seq
        self._snapshot_if_due(milestone=False)
        return self.state

    def catch_up(self) -> RunState:
        """Fold the events other writers committed after this unit of work's state (nothing
        recorded here may be pending): cheaper than ``refold`` when the state is recent."""
        assert not self._buffer, "catch_up with uncommitted events"
        rows = self.store.read(self.run_id, after_seq=self.committed_seq)
        if rows:
            self.state = fold(self.run_id, snap.recorded(rows), self.state)
            self._owned = set()
            self.committed_seq = self.state.last_seq
        return self.state
