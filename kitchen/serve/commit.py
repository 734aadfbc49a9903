"""Group commit: the events of many requests appended in one database transaction.

Every append of the served models' log goes through one thread (:class:`GroupCommit`). It
takes whatever is waiting when it comes round — one append when requests come one at a time,
every append that arrived meanwhile when many clients send at once — and appends the events
of every run in the group in one transaction (the log's ``append_many``). The request blobs
the events name are written before they are submitted, by the callers, side by side (each
fsync'd, so concurrent ones are folded by the file system into one journal commit).

A caller's future is done only when its events are committed, so nothing is acknowledged
before it is on record, exactly as with one append at a time; a kill at any point loses only
appends that no caller has been answered for. A group nobody else joins costs what a single
append did: the thread never waits for company.

A failure stays with the appends it belongs to: a conflict in the group's transaction is
retried run by run, so only the run whose log moved on fails (and keeps failing, as before
group commit: another writer has that run); a database that cannot be reached fails the
group, and each of its runs is appended alone next time (the store settles a commit whose
outcome it could not learn).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from kitchen.engine import faults
from kitchen.errors import ConcurrencyConflict
from kitchen.log_records import NewEvent, StoredEvent

log = logging.getLogger("kitchen.serve")
MAX_GROUP = 256


class GroupLog(Protocol):
    def last_seq(self, run_id: str) -> int: ...

    def append(
        self, run_id: str, events: Sequence[NewEvent], expected_seq: int
    ) -> list[StoredEvent]: ...

    def append_many(
        self, batches: Sequence[tuple[str, Sequence[NewEvent], int]]
    ) -> list[list[StoredEvent]]: ...


@dataclass(slots=True)
class _Item:
    run_id: str
    ready: list[NewEvent]
    tip: int | None
    future: Future[list[StoredEvent]] = field(default_factory=Future)


class GroupCommit:
    """One committer thread, started on the first append."""

    def __init__(self, log: GroupLog) -> None:
        self._log = log
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._tips: dict[str, int] = {}
        self._alone: set[str] = set()  # runs whose last group failed: appended alone next
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self.groups = 0  # groups committed (for tests and the bench)
        self.largest = 0

    def submit(
        self, run_id: str, events: Sequence[NewEvent], *, tip: int | None = None
    ) -> Future[list[StoredEvent]]:
        """Queue an append of ``events``; ``tip``: where the run's log ends, if the caller
        knows better (a new run, a run taken up)."""
        item = _Item(run_id, list(events), tip)
        self._ensure_thread()
        self._queue.put(item)
        return item.future

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._start:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="serve-commit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            try:
                self._commit(group)
            except BaseException as exc:  # a bug: fail the group, keep committing
                log.exception("group commit failed")
                for item in group:
                    if not item.future.done():
                        item.future.set_exception(exc)
            if stop:
                return

    # ------------------------------------------------------------------ one group

    def _commit(self, group: list[_Item]) -> None:
        self.groups += 1
        self.largest = max(self.largest, len(group))
        if len({i.run_id for i in group}) > 1:
            faults.point("serve:commit:burst")  # several models' events, none committed yet
        together = [i for i in group if i.run_id not in self._alone]
        for item in group:
            if item.run_id in self._alone:
                self._append_alone([item])
        by_run: dict[str, list[_Item]] = {}
        for item in together:
            by_run.setdefault(item.run_id, []).append(item)
        if len(by_run) <= 1:
            for items in by_run.values():
                self._append_alone(items)
            return
        try:
            batches = [
                (run_id, [e for i in items for e in i.ready], self._tip(items[0]))
                for run_id, items in by_run.items()
            ]
            stored = self._log.append_many(batches)
        except ConcurrencyConflict:
            for items in by_run.values():  # learn which run moved on: it fails alone
                self._append_alone(items)
            return
        except Exception as exc:
            for run_id, items in by_run.items():
                self._tips.pop(run_id, None)
                self._alone.add(run_id)
                _fail(items, exc)
            return
        for (run_id, items), events in zip(by_run.items(), stored, strict=True):
            self._done(run_id, items, events)

    def _tip(self, item: _Item) -> int:
        if item.tip is not None:
            self._tips[item.run_id] = item.tip
        tip = self._tips.get(item.run_id)
        if tip is None:
            tip = self._tips[item.run_id] = self._log.last_seq(item.run_id)
        return tip

    def _append_alone(self, items: list[_Item]) -> None:
        """One run's items in one append (as they came, they may name a tip of their own)."""
        run_id = items[0].run_id
        try:
            ready = [e for i in items for e in i.ready]
            events = self._log.append(run_id, ready, self._tip(items[0]))
        except Exception as exc:
            if not isinstance(exc, ConcurrencyConflict):  # a conflict keeps refusing the run
                self._tips.pop(run_id, None)
            _fail(items, exc)
            return
        self._alone.discard(run_id)
        self._done(run_id, items, events)

    def _done(self, run_id: str, items: list[_Item], events: list[StoredEvent]) -> None:
        if events:
            self._tips[run_id] = events[-1].seq
        start = 0
        for item in items:
            end = start + len(item.ready)
            item.future.set_result(events[start:end])
            start = end


def _fail(items: list[_Item], exc: BaseException) -> None:
    for item in items:
        item.future.set_exception(exc)
