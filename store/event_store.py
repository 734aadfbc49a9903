"""The event store: an append-only log of run events in SQLite or Postgres.

Appends are optimistic: the caller names the last seq it has seen and the UNIQUE(run_id, seq)
constraint turns a lost race into :class:`ConcurrencyConflict` with nothing written. Every
driver error leaves as a kitchen error (see ``_engine.translate``). A dropped connection is
survived where that is safe: reads are retried once, and an append whose commit outcome is
unknown is settled by reading back its rows and comparing hashes, so it is never written twice.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc

from kitchen.errors import ConcurrencyConflict, KitchenError, NotFound, StoreError, StoreUnavailable
from kitchen.log_records import (
    Lease,
    NewEvent,
    RunRow,
    Snapshot,
    StoredEvent,
    VerifyResult,
    check_run_id,
)

from . import _append, _dialects, _leases, _sql
from ._engine import DRIVER_ERRORS, is_disconnect, mask, translate
from ._verify import verify_chain
from .canonical import GENESIS_HASH, snapshot_hash
from .projection import initial_row, project
from .schema import events, runs, snapshots

T = TypeVar("T")
Hook = Callable[[str], None]
"""Called with the name of a moment inside an append (``append:before_commit``: the rows are
inserted, the transaction not yet committed). The store never acts on it; kitchen's crash
tests pass ``kitchen.engine.faults.point`` to be killed exactly there."""
_MAX_TIPS = 10_000


@dataclass(frozen=True, slots=True)
class _Unsettled:
    """An append whose commit we could not confirm: settled on the next append to the run."""

    expected_seq: int
    rows: list[dict[str, Any]]


class EventStore:
    """Append, read, verify and lease runs. Open one with :func:`kitchen.store.open_store`."""

    def __init__(self, engine: sa.Engine, url: str, *, hook: Hook | None = None) -> None:
        self._engine = engine
        self._hook = hook
        self._url = url
        self.url_for_display = mask(url)
        self.dialect: str = engine.dialect.name
        # run_id -> (seq, hash) of the newest event this instance wrote or read. Only a hint
        # for chaining: UNIQUE(run_id, seq) still catches every conflict.
        self._tips: dict[str, tuple[int, str]] = {}
        self._unsettled: dict[str, _Unsettled] = {}
        self._held: sa.Connection | None = None  # the connection kept for writes
        self._held_pid: int | None = None
        self._held_lock = threading.Lock()

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine, for tools and tests; never write events through it."""
        return self._engine

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _writer(self, *, log: bool = True) -> Iterator[sa.Connection]:
        """A write transaction; with ``log``, one that serialises with every writer of the log.

        SQLite: ``BEGIN IMMEDIATE`` (there is one writer at a time anyway). Postgres, for the
        log: ``LOCK TABLE events IN EXCLUSIVE MODE`` (readers are not blocked), so positions
        become visible in commit order and a reader tailing by position never skips an event
        that commits late. Lease and cancel writes leave the log alone and take row locks only.
        """
        if self._held_lock.acquire(blocking=False):
            try:
                held = self._held_connection()
                try:
                    with self._transaction(held, log):
                        yield held
                except DRIVER_ERRORS:
                    self._drop_held()  # the next write starts on a fresh connection
                    raise
            finally:
                self._held_lock.release()
            return
        with self._engine.connect() as conn:
            conn = conn.execution_options(kitchen_begin="IMMEDIATE")
            with self._transaction(conn, log):
                yield conn

    @contextmanager
    def _transaction(self, conn: sa.Connection, log: bool) -> Iterator[None]:
        with conn.begin():
            if log and self.dialect == "postgresql":
                conn.exec_driver_sql(_sql.LOCK_LOG)
            yield

    def _held_connection(self) -> sa.Connection:
        """The connection this store keeps for its writes (the caller holds _held_lock).

        Checking a connection out of the pool and resetting it on return cost about as much
        as a SQLite commit (30-40 µs of a one-event append's 0.2 ms before). A writer in
        another thread, while this one is busy, takes a pooled connection instead; a driver
        error (a lost Postgres connection included) drops the kept one.
        """
        pid = os.getpid()
        if self._held is None or self._held_pid != pid:
            self._held = self._engine.connect().execution_options(kitchen_begin="IMMEDIATE")
            self._held_pid = pid
        return self._held

    def _drop_held(self) -> None:
        held, self._held = self._held, None
        if held is not None and self._held_pid == os.getpid():
            with suppress(Exception):
                held.close()

    def _read(self, doing: str, fn: Callable[[sa.Connection], T]) -> T:
        """Run a read in one transaction; retried once if the connection was dropped."""
        for attempt in (1, 2):
            try:
                with self._engine.connect() as conn, conn.begin():
                    return fn(conn)
            except DRIVER_ERRORS as error:
                if attempt == 1 and is_disconnect(error):
                    continue
                raise translate(error, self._url, doing) from None
        raise AssertionError("unreachable")

    def _write(self, doing: str, fn: Callable[[sa.Connection], T], *, log: bool = False) -> T:
        try:
            with self._writer(log=log) as conn:
                return fn(conn)
        except KitchenError:
            raise
        except DRIVER_ERRORS as error:
            raise translate(error, self._url, doing) from None

    # ------------------------------------------------------------------ appends

    def append(
        self, run_id: str, events: Sequence[NewEvent], expected_seq: int
    ) -> list[StoredEvent]:
        """Append ``events`` after seq ``expected_seq`` (0 for a new run), all or nothing."""
        check_run_id(run_id)
        if not isinstance(expected_seq, int) or expected_seq < 0:
            raise ValueError(f"expected_seq must be an int >= 0, not {expected_seq!r}")
        prepared = _append.prepare(events)
        if not prepared:
            return []
        settled = self._settle(run_id, prepared, expected_seq)
        if settled is not None:
            return settled
        for attempt in (1, 2):
            rows: list[dict[str, Any]] = []
            try:
                # Postgres: the append takes the log's lock itself, in its one round trip
                with self._writer(log=self.dialect != "postgresql") as conn:
                    prev = self._prev(conn, run_id, expected_seq)
                    rows = _append.build(run_id, prepared, expected_seq, prev)
                    stored = _append.write(conn, rows, expected_seq)
                    if self._hook is not None:  # crash tests: inserted, not committed
                        self._hook("append:before_commit")
            except (exc.IntegrityError, sqlite3.IntegrityError):
                self._tips.pop(run_id, None)
                raise self._conflict(run_id, expected_seq) from None
            except ConcurrencyConflict:
                self._tips.pop(run_id, None)
                raise
            except DRIVER_ERRORS as error:
                if not is_disconnect(error):
                    raise translate(error, self._url, f"append to run {run_id}") from None
                outcome = self._read_back(run_id, expected_seq, rows) if rows else []
                if outcome:
                    stored = outcome
                elif attempt == 1:
                    continue
                else:
                    raise translate(error, self._url, f"append to run {run_id}") from None
            self._remember(run_id, stored[-1].seq, stored[-1].hash)
            return stored
        raise AssertionError("unreachable")

    def append_many(
        self, batches: Sequence[tuple[str, Sequence[NewEvent], int]]
    ) -> list[list[StoredEvent]]:
        """Several runs' appends in one transaction (group commit), all or nothing: each
        ``(run_id, events, expected_seq)`` as :meth:`append` takes it, each run at most once.

        A conflict on any run raises ``ConcurrencyConflict`` with nothing written; the caller
        retries the runs one by one to learn which. A commit whose outcome is unknown (a lost
        connection) is settled like a single append's: read back, never written twice; if even
        that fails, each run's batch is remembered and its next :meth:`append` settles it.
        """
        if len(batches) == 1:
            run_id, batch, expected = batches[0]
            return [self.append(run_id, batch, expected)]
        prepared: list[tuple[str, list[_append.Prepared], int]] = []
        for run_id, batch, expected in batches:
            check_run_id(run_id)
            if not isinstance(expected, int) or expected < 0:
                raise ValueError(f"expected_seq must be an int >= 0, not {expected!r}")
            prepared.append((run_id, _append.prepare(batch), expected))
        if len({run_id for run_id, _, _ in prepared}) != len(prepared):
            raise ValueError("append_many names a run more than once: merge its events")
        for attempt in (1, 2):
            built: list[tuple[str, int, list[dict[str, Any]]]] = []
            try:
                with self._writer(log=self.dialect != "postgresql") as conn:
                    stored: list[list[StoredEvent]] = []
                    for run_id, prep, expected in prepared:
                        if not prep:
                            stored.append([])
                            continue
                        prev = self._prev(conn, run_id, expected)
                        rows = _append.build(run_id, prep, expected, prev)
                        built.append((run_id, expected, rows))
                        stored.append(_append.write(conn, rows, expected))
                    if self._hook is not None:  # crash tests: inserted, not committed
                        self._hook("append:before_commit")
            except (exc.IntegrityError, sqlite3.IntegrityError, ConcurrencyConflict) as error:
                for run_id, _, _ in prepared:
                    self._tips.pop(run_id, None)
                if isinstance(error, ConcurrencyConflict):
                    raise
                raise ConcurrencyConflict(
                    f"one of runs {', '.join(r for r, _, _ in prepared)} moved on: a seq was "
                    "already taken by another writer; append them one by one to learn which"
                ) from None
            except DRIVER_ERRORS as error:
                doing = f"append to {len(prepared)} runs"
                if not is_disconnect(error):
                    raise translate(error, self._url, doing) from None
                # rows not all built: the commit was never sent
                complete = bool(built) and len(built) == sum(1 for _, p, _ in prepared if p)
                outcome = self._read_back_many(built) if complete else None
                if outcome is None:
                    if attempt == 1:
                        continue
                    raise translate(error, self._url, doing) from None
                stored = [outcome.get(run_id, []) for run_id, _, _ in prepared]
            for part in stored:
                if part:
                    self._remember(part[0].run_id, part[-1].seq, part[-1].hash)
            return stored
        raise AssertionError("unreachable")

    def _read_back_many(
        self, built: list[tuple[str, int, list[dict[str, Any]]]]
    ) -> dict[str, list[StoredEvent]] | None:
        """Settle a group commit whose outcome is unknown: one transaction, so the first run's
        rows say for all. The stored events per run if it committed, None if it did not."""
        try:
            first = self._read_back(*built[0])
        except StoreUnavailable:
            for run_id, expected, rows in built[1:]:
                self._unsettled[run_id] = _Unsettled(expected, rows)
            raise
        if not first:
            return None
        out = {built[0][0]: first}
        for run_id, expected, rows in built[1:]:
            out[run_id] = self._read_back(run_id, expected, rows)
        return out

    def _prev(self, conn: sa.Connection, run_id: str, expected_seq: int) -> str:
        if expected_seq == 0:
            return GENESIS_HASH
        tip = self._tips.get(run_id)
        if tip is not None and tip[0] == expected_seq:
            return tip[1]
        return _append.hash_at(conn, run_id, expected_seq)

    def _read_back(
        self, run_id: str, expected_seq: int, rows: list[dict[str, Any]]
    ) -> list[StoredEvent]:
        """Settle an append whose commit outcome is unknown.

        Returns the stored events if our rows are there (it committed), [] if no row is there
        (it did not). Someone else's rows there mean we lost a race. If the database cannot
        even be read, the batch is remembered and the next append of it settles it first.
        """
        try:
            found = self._read(
                f"read back run {run_id}",
                lambda conn: _rows(conn, run_id, expected_seq, expected_seq + len(rows)),
            )
        except StoreUnavailable:
            self._unsettled[run_id] = _Unsettled(expected_seq, rows)
            raise StoreUnavailable(
                f"lost the connection to {self.url_for_display} while appending to run "
                f"{run_id}, and cannot tell if it committed; retry the same append "
                "(it will not be written twice)"
            ) from None
        if not found:
            return []
        if [r.hash for r in found] == [r["hash"] for r in rows]:
            return found
        raise self._conflict(run_id, expected_seq)

    def _settle(
        self, run_id: str, prepared: list[_append.Prepared], expected_seq: int
    ) -> list[StoredEvent] | None:
        """If this exact batch was left unsettled by a lost connection, settle it first."""
        pending = self._unsettled.pop(run_id, None)
        if pending is None or pending.expected_seq != expected_seq:
            return None
        same = [(p.type, p.payload_json, p.schema_version) for p in prepared] == [
            (r["type"], r["payload"], r["schema_version"]) for r in pending.rows
        ]
        if not same:
            return None
        return self._read_back(run_id, expected_seq, pending.rows) or None

    def _conflict(self, run_id: str, expected_seq: int) -> ConcurrencyConflict:
        return ConcurrencyConflict(
            f"run {run_id!r} moved on: seq {expected_seq + 1} was already taken by another "
            "writer; reload the run and retry from its last seq"
        )

    def _remember(self, run_id: str, seq: int, digest: str) -> None:
        if len(self._tips) >= _MAX_TIPS:
            self._tips.clear()
        self._tips[run_id] = (seq, digest)

    # ------------------------------------------------------------------ reads

    def read(
        self, run_id: str, after_seq: int = 0, upto_seq: int | None = None
    ) -> list[StoredEvent]:
        """The run's events with ``after_seq < seq <= upto_seq``, in seq order."""
        check_run_id(run_id)
        found = self._read(
            f"read run {run_id}", lambda conn: _rows(conn, run_id, after_seq, upto_seq)
        )
        if found and upto_seq is None:
            self._remember(run_id, found[-1].seq, found[-1].hash)
        return found

    def read_all(self, after_position: int = 0, limit: int | None = None) -> list[StoredEvent]:
        """Events of every run with position > ``after_position``, in position order."""
        query = sa.select(events).where(events.c.position > after_position)
        query = query.order_by(events.c.position).limit(limit)
        return self._read(
            "read the event log",
            lambda conn: [_append.to_stored(r, r.position) for r in conn.execute(query).mappings()],
        )

    def last_position(self) -> int:
        """The highest position committed so far (0 for an empty log): where a reader that
        wants only new events starts ``read_all``."""
        query = sa.select(sa.func.max(events.c.position))
        return int(self._read("read the event log", lambda c: c.execute(query).scalar()) or 0)

    def last_seq(self, run_id: str) -> int:
        check_run_id(run_id)
        query = sa.select(sa.func.max(events.c.seq)).where(events.c.run_id == run_id)
        return int(self._read(f"read run {run_id}", lambda c: c.execute(query).scalar()) or 0)

    def run_exists(self, run_id: str) -> bool:
        return self.last_seq(run_id) > 0

    def get_run(self, run_id: str) -> RunRow | None:
        check_run_id(run_id)
        query = sa.select(runs).where(runs.c.run_id == run_id)
        row = self._read(f"read run {run_id}", lambda c: c.execute(query).first())
        return None if row is None else RunRow(**row._mapping)

    def list_runs(self, status: str | None = None, recipe: str | None = None) -> list[RunRow]:
        """Rows of the runs projection, oldest first."""
        query = sa.select(runs).order_by(runs.c.created_at, runs.c.run_id)
        if status is not None:
            query = query.where(runs.c.status == status)
        if recipe is not None:
            query = query.where(runs.c.recipe == recipe)
        rows = self._read("list runs", lambda c: c.execute(query).all())
        return [RunRow(**r._mapping) for r in rows]

    def verify(self, run_id: str) -> VerifyResult:
        """Recompute the run's hash chain and check its seqs are 1, 2, 3, ..."""
        found = self.read(run_id)
        if not found:
            raise NotFound(f"no run {run_id!r} in {self.url_for_display}; see `kitchen runs`")
        return verify_chain(found)

    # ------------------------------------------------------------------ projections

    def rebuild_projections(self) -> int:
        """Recompute the runs table from the log (after a bug fix, or to audit it)."""

        def rebuild(conn: sa.Connection) -> int:
            conn.execute(runs.delete())
            query = sa.select(events).order_by(events.c.run_id, events.c.seq)
            rows: dict[str, RunRow] = {}
            for r in conn.execute(query).mappings():
                row = rows.get(r["run_id"]) or initial_row(r["run_id"], r["recorded_at"])
                e = _append.to_stored(r, r["position"])
                rows[e.run_id] = project(row, e.type, e.payload, e.seq, e.recorded_at)
            if rows:
                conn.execute(runs.insert(), [_as_dict(row) for row in rows.values()])
            return len(rows)

        return self._write("rebuild the runs projection", rebuild, log=True)

    # ------------------------------------------------------------------ snapshots

    def write_snapshot(
        self, run_id: str, seq: int, version: str, state: str, *, keep: int = 2
    ) -> Snapshot:
        """Store the run's folded state at ``seq`` (text written by fold ``version``).

        The snapshot is sealed to the run's event at ``seq`` (its hash) and to its own
        contents (``sha256``). In the same transaction, snapshots of other versions of the
        fold are removed, and of this version only the newest ``keep`` are kept. Snapshots are
        not history: this takes no lock on the log, and never changes an event.
        """
        check_run_id(run_id)
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep!r}")

        def write(conn: sa.Connection) -> Snapshot:
            event_hash = conn.execute(
                sa.select(events.c.hash).where(events.c.run_id == run_id, events.c.seq == seq)
            ).scalar_one_or_none()
            if event_hash is None:
                raise StoreError(
                    f"run {run_id!r} has no event at seq {seq}; a snapshot must be taken at one "
                    "of its run's events"
                )
            snap = Snapshot(
                run_id=run_id,
                version=version,
                seq=seq,
                event_hash=event_hash,
                state=state,
                sha256=snapshot_hash(run_id, version, seq, event_hash, state),
                recorded_at=datetime.now(UTC),
            )
            mine = snapshots.c.run_id == run_id
            conn.execute(
                snapshots.delete().where(
                    mine, snapshots.c.version == version, snapshots.c.seq == seq
                )
            )
            conn.execute(snapshots.insert().values(**_as_dict(snap)))
            conn.execute(snapshots.delete().where(mine, snapshots.c.version != version))
            newest = (
                sa.select(snapshots.c.seq)
                .where(mine, snapshots.c.version == version)
                .order_by(snapshots.c.seq.desc())
                .limit(keep)
            )
            kept = conn.execute(newest).scalars().all()
            conn.execute(
                snapshots.delete().where(
                    mine, snapshots.c.version == version, snapshots.c.seq < min(kept)
                )
            )
            return snap

        return self._write(f"write a snapshot of run {run_id}", write)

    def read_snapshot(
        self, run_id: str, version: str, upto_seq: int | None = None
    ) -> Snapshot | None:
        """The newest snapshot of fold ``version`` at or before ``upto_seq`` that verifies.

        A snapshot verifies when its ``event_hash`` is still the hash of the run's event at its
        seq and its ``sha256`` matches its contents. One that does not is skipped (and an
        older one tried): it is never returned, so a damaged cache costs only a longer fold.
        """
        check_run_id(run_id)
        query = (
            sa.select(snapshots.c.seq, snapshots.c.event_hash, events.c.hash)
            .select_from(snapshots)
            .outerjoin(
                events,
                sa.and_(events.c.run_id == snapshots.c.run_id, events.c.seq == snapshots.c.seq),
            )
            .where(snapshots.c.run_id == run_id, snapshots.c.version == version)
            .order_by(snapshots.c.seq.desc())
        )
        if upto_seq is not None:
            query = query.where(snapshots.c.seq <= upto_seq)

        def read(conn: sa.Connection) -> Snapshot | None:
            for seq, sealed_to, event_hash in conn.execute(query).all():
                if sealed_to != event_hash:
                    continue
                row = conn.execute(
                    sa.select(snapshots).where(
                        snapshots.c.run_id == run_id,
                        snapshots.c.version == version,
                        snapshots.c.seq == seq,
                    )
                ).first()
                if row is None:
                    continue
                snap = Snapshot(**row._mapping)
                digest = snapshot_hash(run_id, version, seq, snap.event_hash, snap.state)
                if digest == snap.sha256:
                    return snap
            return None

        return self._read(f"read the snapshots of run {run_id}", read)

    def delete_snapshots(self, run_id: str | None = None) -> int:
        """Remove the snapshots of ``run_id`` (of every run if None); how many were removed.

        Nothing else changes: readers fold the whole log until a runner writes new ones.
        """
        query = snapshots.delete()
        if run_id is not None:
            check_run_id(run_id)
            query = query.where(snapshots.c.run_id == run_id)
        return self._write("remove snapshots", lambda c: int(c.execute(query).rowcount or 0))

    # ------------------------------------------------------------------ leases

    def acquire_lease(
        self, run_id: str, holder: str, *, host: str, pid: int, attempt: int, ttl_s: float
    ) -> Lease:
        """Claim the run for one worker; LeaseHeld if another live worker has it."""
        check_run_id(run_id)
        now = datetime.now(UTC)
        new = Lease(run_id, holder, host, pid, attempt, now, now + timedelta(seconds=ttl_s))
        return self._write(f"lease run {run_id}", lambda c: _leases.acquire(c, new))

    def renew_lease(self, run_id: str, holder: str, ttl_s: float) -> None:
        check_run_id(run_id)
        self._write(
            f"renew the lease of {run_id}", lambda c: _leases.renew(c, run_id, holder, ttl_s)
        )

    def release_lease(self, run_id: str, holder: str) -> None:
        check_run_id(run_id)
        self._write(f"release run {run_id}", lambda c: _leases.release(c, run_id, holder))

    def get_lease(self, run_id: str) -> Lease | None:
        check_run_id(run_id)
        return self._read(f"read the lease of {run_id}", lambda c: _leases.get(c, run_id))

    def request_cancel(self, run_id: str) -> None:
        """Ask the worker driving the run to stop at its next stage boundary."""
        if not self.run_exists(run_id):
            raise NotFound(f"no run {run_id!r} in {self.url_for_display}; see `kitchen runs`")
        self._write(f"cancel run {run_id}", lambda c: _leases.request_cancel(c, run_id))

    def cancel_requested(self, run_id: str) -> bool:
        check_run_id(run_id)
        return self._read(f"read run {run_id}", lambda c: _leases.cancel_requested(c, run_id))

    def clear_cancel(self, run_id: str) -> None:
        check_run_id(run_id)
        self._write(f"cancel run {run_id}", lambda c: _leases.clear_cancel(c, run_id))

    def close(self) -> None:
        with self._held_lock:
            self._drop_held()
        self._engine.dispose()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventStore({self.url_for_display!r})"


def _rows(
    conn: sa.Connection, run_id: str, after_seq: int, upto_seq: int | None
) -> list[StoredEvent]:
    """The run's events in (after_seq, upto_seq], by plain SQL (the hot path of every fold:
    SQLAlchemy Core's row objects cost more than the rows' own decoding)."""
    bounded = upto_seq is not None
    params = (run_id, after_seq, upto_seq) if bounded else (run_id, after_seq)
    found = list(_dialects.execute(conn, _sql.select_events(conn.dialect, bounded), params))
    payloads = _append.parse_payloads([row[4] for row in found])
    read_at = _sql.timestamp_reader(conn.dialect)
    # position, run_id, seq, type, payload, recorded_at, schema_version, prev_hash, hash
    return [
        StoredEvent(r[0], r[1], r[2], r[3], payload, r[4], read_at(r[5]), r[6], r[7], r[8])
        for r, payload in zip(found, payloads, strict=True)
    ]


def _as_dict(row: RunRow | Snapshot) -> dict[str, Any]:
    return {name: getattr(row, name) for name in type(row).__dataclass_fields__}
