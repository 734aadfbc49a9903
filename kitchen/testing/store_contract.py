"""The event store's contract, written once and run against every database.

Subclass :class:`EventStoreContract` and override the ``store`` fixture to yield an open,
empty :class:`kitchen.store.EventStore`. Tampering cases edit rows with raw SQL through
``store.engine``, the way a bad actor or a bad migration would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from kitchen.errors import (
    ConcurrencyConflict,
    InvalidRunId,
    LeaseHeld,
    NotFound,
    StoreError,
)
from kitchen.ports import EventLog
from kitchen.store import EventStore, NewEvent, VerifyResult, open_store
from kitchen.store.schema import UTCDateTime

HOST = socket.gethostname()


def ev(type: str, **payload: object) -> NewEvent:
    return NewEvent(type, dict(payload))


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped) on this host."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


class EventStoreContract:
    __test__ = False

    @pytest.fixture
    def store(self) -> Iterator[EventStore]:
        raise NotImplementedError("override the store fixture")

    @pytest.fixture
    def other(self, store: EventStore) -> Iterator[EventStore]:
        """A second store on the same database, as another process would have."""
        second = open_store(store.engine.url.render_as_string(hide_password=False))
        yield second
        second.close()

    def sql(self, store: EventStore, statement: str, **params: object) -> None:
        with store.engine.begin() as conn:
            conn.execute(sa.text(statement), params)

    def test_is_the_engines_event_log(self, store: EventStore) -> None:
        """The runner, unit of work and attempt guard take an ``EventLog``: the store is one
        (the assignment is checked by mypy, the isinstance at run time)."""
        log: EventLog = store
        assert isinstance(log, EventLog)

    # ------------------------------------------------------------------ appends

    def test_seqs_are_contiguous_across_appends(self, store: EventStore) -> None:
        got = store.append(
            "r1", [ev("RunCreated", recipe="sl"), ev("AttemptStarted", attempt=1)], 0
        )
        assert [e.seq for e in got] == [1, 2]
        store.append("r1", [ev("StageStarted", step=0)], 2)
        store.append("r1", [ev("StageCompleted", step=1), ev("StageStarted", step=1)], 3)
        assert [e.seq for e in store.read("r1")] == [1, 2, 3, 4, 5]
        assert store.last_seq("r1") == 5
        assert store.run_exists("r1")
        assert not store.run_exists("r2")
        assert store.last_seq("r2") == 0

    def test_read_returns_what_append_returned(self, store: EventStore) -> None:
        written = store.append("r1", [ev("RunCreated", recipe="sl", b=1.5, a="é")], 0)
        (read,) = store.read("r1")
        assert read == written[0]
        assert read.payload_json == '{"a":"é","b":1.5,"recipe":"sl"}'
        assert read.payload == {"a": "é", "b": 1.5, "recipe": "sl"}
        assert read.recorded_at.utcoffset() == timedelta(0)
        assert read.prev_hash == "0" * 64

    def test_read_window(self, store: EventStore) -> None:
        store.append("r1", [ev("E", i=i) for i in range(5)], 0)
        assert [e.seq for e in store.read("r1", after_seq=2)] == [3, 4, 5]
        assert [e.seq for e in store.read("r1", after_seq=1, upto_seq=3)] == [2, 3]
        assert store.read("unknown") == []

    def test_taken_seq_conflicts_and_writes_nothing(
        self, store: EventStore, other: EventStore
    ) -> None:
        store.append("r1", [ev("RunCreated", recipe="sl"), ev("AttemptStarted", attempt=1)], 0)
        other.append("r1", [ev("StageStarted", step=0)], 2)
        with pytest.raises(ConcurrencyConflict):
            store.append("r1", [ev("StageStarted", step=9), ev("StageCompleted", step=9)], 2)
        assert [(e.seq, e.type) for e in store.read("r1")] == [
            (1, "RunCreated"),
            (2, "AttemptStarted"),
            (3, "StageStarted"),
        ]
        assert store.get_run("r1").last_seq == 3  # type: ignore[union-attr]
        store.append("r1", [ev("StageCompleted", step=1)], 3)
        assert store.verify("r1").ok

    def test_new_run_on_existing_id_conflicts(self, store: EventStore) -> None:
        store.append("r1", [ev("RunCreated", recipe="sl")], 0)
        with pytest.raises(ConcurrencyConflict):
            store.append("r1", [ev("RunCreated", recipe="other")], 0)
        assert store.get_run("r1").recipe == "sl"  # type: ignore[union-attr]

    def test_batch_overlapping_the_tail_is_all_or_nothing(
        self, store: EventStore, other: EventStore
    ) -> None:
        store.append("r1", [ev("E", i=1), ev("E", i=2), ev("E", i=3)], 0)
        # seqs 2 and 3 are taken, 4 is free: not even seq 4 may be written
        with pytest.raises(ConcurrencyConflict):
            other.append("r1", [ev("F"), ev("F"), ev("F")], 1)
        assert [e.type for e in store.read("r1")] == ["E", "E", "E"]

    def test_bad_event_in_a_batch_writes_nothing(self, store: EventStore) -> None:
        with pytest.raises(StoreError, match=r"metrics\.loss"):
            store.append("r1", [ev("A"), ev("B", metrics={"loss": float("nan")})], 0)
        with pytest.raises(StoreError, match=r"\$\.x"):
            store.append("r1", [ev("A", x=float("inf"))], 0)
        assert store.read("r1") == []
        assert store.get_run("r1") is None

    def test_expected_seq_ahead_of_the_log_conflicts(self, store: EventStore) -> None:
        store.append("r1", [ev("E")], 0)
        with pytest.raises(ConcurrencyConflict):
            store.append("r1", [ev("E")], 5)
        assert store.last_seq("r1") == 1

    # ------------------------------------------------------------------ hash chain

    def _three(self, store: EventStore, run_id: str) -> None:
        store.append(run_id, [ev("RunCreated", recipe="sl"), ev("E", step=1)], 0)
        store.append(run_id, [ev("E", step=2)], 2)

    def test_chain_links_and_verifies(self, store: EventStore) -> None:
        self._three(store, "r1")
        found = store.read("r1")
        assert [e.prev_hash for e in found] == ["0" * 64, found[0].hash, found[1].hash]
        assert store.verify("r1") == VerifyResult(True, 3, None, None)

    def test_edited_payload_is_found_at_its_seq(self, store: EventStore) -> None:
        self._three(store, "r1")
        self.sql(
            store, "UPDATE events SET payload = :p WHERE run_id = 'r1' AND seq = 2", p='{"step":7}'
        )
        result = store.verify("r1")
        assert (result.ok, result.first_bad_seq, result.checked) == (False, 2, 1)

    def test_edited_recorded_at_is_found_at_its_seq(self, store: EventStore) -> None:
        self._three(store, "r1")
        moved = store.read("r1")[2].recorded_at + timedelta(microseconds=1)
        with store.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE events SET recorded_at = :t WHERE run_id = 'r1' AND seq = 3"
                ).bindparams(sa.bindparam("t", type_=UTCDateTime())),
                {"t": moved},
            )
        assert store.read("r1")[2].recorded_at == moved
        assert store.verify("r1").first_bad_seq == 3

    def test_edited_schema_version_is_found_at_its_seq(self, store: EventStore) -> None:
        self._three(store, "r1")
        self.sql(store, "UPDATE events SET schema_version = 2 WHERE run_id = 'r1' AND seq = 1")
        result = store.verify("r1")
        assert (result.ok, result.first_bad_seq) == (False, 1)

    def test_missing_event_is_found(self, store: EventStore) -> None:
        self._three(store, "r1")
        self.sql(store, "DELETE FROM events WHERE run_id = 'r1' AND seq = 2")
        assert store.verify("r1").first_bad_seq == 2

    def test_verify_unknown_run_is_not_found(self, store: EventStore) -> None:
        with pytest.raises(NotFound):
            store.verify("nope")

    # ------------------------------------------------------------------ projection

    def _history(self, store: EventStore) -> None:
        store.append(
            "done",
            [
                ev("RunCreated", recipe="sl_basic"),
                ev("AttemptStarted", attempt=1),
                ev("StageCompleted", stage="optim_step", step=4),
                ev("AttemptInterrupted", attempt=1, signal="SIGINT", step=4),
            ],
            0,
        )
        store.append(
            "done",
            [
                ev("AttemptStarted", attempt=2),
                ev("RunResumed", attempt=2, from_step=3),
                ev("StageCompleted", stage="optim_step", step=6),
                ev("RunCompleted", step=6),
            ],
            4,
        )
        store.append(
            "bad",
            [
                ev("RunCreated", recipe="dpo_basic"),
                ev("AttemptStarted", attempt=1),
                ev("RunFailed", error="x"),
            ],
            0,
        )
        store.append(
            "stopped",
            [
                ev("RunCreated", recipe="sl_basic"),
                ev("AttemptStarted", attempt=1),
                ev("RunCancelled", step=0),
            ],
            0,
        )
        store.append(
            "live",
            [
                ev("RunCreated", recipe="sl_basic"),
                ev("AttemptStarted", attempt=1),
                ev("StageStarted", stage="get_batch", step=True),
            ],
            0,
        )

    def test_projection_follows_the_rules(self, store: EventStore) -> None:
        self._history(store)
        done = store.get_run("done")
        assert done is not None
        assert (done.recipe, done.status, done.attempts, done.step, done.last_seq) == (
            "sl_basic",
            "completed",
            2,
            6,
            8,
        )
        assert done.created_at == store.read("done")[0].recorded_at
        assert done.updated_at == store.read("done")[-1].recorded_at
        statuses = {r.run_id: (r.status, r.step) for r in store.list_runs()}
        assert statuses == {
            "done": ("completed", 6),
            "bad": ("failed", None),
            "stopped": ("cancelled", 0),
            "live": ("running", None),
        }
        assert store.get_run("nope") is None

    def test_list_runs_filters(self, store: EventStore) -> None:
        self._history(store)
        assert [r.run_id for r in store.list_runs(recipe="sl_basic")] == ["done", "stopped", "live"]
        assert [r.run_id for r in store.list_runs(status="failed")] == ["bad"]
        assert store.list_runs(status="failed", recipe="sl_basic") == []

    def test_rebuild_equals_incremental(self, store: EventStore) -> None:
        self._history(store)
        before = store.list_runs()
        self.sql(store, "UPDATE runs SET status = 'bogus', attempts = 99")
        assert store.rebuild_projections() == 4
        assert store.list_runs() == before

    # ------------------------------------------------------------------ run ids

    @pytest.mark.parametrize("run_id", ["", "-a", ".a", "a/b", "a b", "a" * 65, "ü", "a\n", "../x"])
    def test_bad_run_ids_are_refused(self, store: EventStore, run_id: str) -> None:
        with pytest.raises(InvalidRunId):
            store.append(run_id, [ev("E")], 0)
        with pytest.raises(InvalidRunId):
            store.read(run_id)
        with pytest.raises(InvalidRunId):
            store.acquire_lease(run_id, "h", host=HOST, pid=1, attempt=1, ttl_s=5)

    @pytest.mark.parametrize("run_id", ["a", "Z" * 64, "x.y_z-1", "0run"])
    def test_good_run_ids_are_accepted(self, store: EventStore, run_id: str) -> None:
        store.append(run_id, [ev("E")], 0)
        assert store.last_seq(run_id) == 1

    # ------------------------------------------------------------------ tailing

    def test_read_all_is_in_append_order(self, store: EventStore, other: EventStore) -> None:
        store.append("a", [ev("E", n=1), ev("E", n=2)], 0)
        other.append("b", [ev("E", n=3)], 0)
        store.append("a", [ev("E", n=4)], 2)
        other.append("b", [ev("E", n=5), ev("E", n=6)], 1)
        everything = store.read_all()
        assert [e.payload["n"] for e in everything] == [1, 2, 3, 4, 5, 6]
        positions = [e.position for e in everything]
        assert positions == sorted(set(positions))
        after = store.read_all(after_position=positions[2], limit=2)
        assert [e.payload["n"] for e in after] == [4, 5]
        assert store.read_all(after_position=positions[-1]) == []

    # ------------------------------------------------------------------ leases

    def test_second_holder_is_refused(self, store: EventStore) -> None:
        lease = store.acquire_lease("r1", "w1", host=HOST, pid=os.getpid(), attempt=1, ttl_s=30)
        assert store.get_lease("r1") == lease
        with pytest.raises(LeaseHeld, match="held by pid"):
            store.acquire_lease("r1", "w2", host=HOST, pid=os.getpid(), attempt=2, ttl_s=30)
        with pytest.raises(LeaseHeld):
            store.renew_lease("r1", "w2", ttl_s=30)
        store.renew_lease("r1", "w1", ttl_s=60)
        again = store.acquire_lease("r1", "w1", host=HOST, pid=os.getpid(), attempt=1, ttl_s=30)
        assert store.get_lease("r1") == again
        store.release_lease("r1", "w2")  # not the holder: no effect
        assert store.get_lease("r1") is not None
        store.release_lease("r1", "w1")
        assert store.get_lease("r1") is None
        store.acquire_lease("r1", "w2", host=HOST, pid=os.getpid(), attempt=2, ttl_s=30)
        assert store.get_lease("r1").holder == "w2"  # type: ignore[union-attr]

    def test_expired_lease_is_taken_over(self, store: EventStore) -> None:
        store.acquire_lease("r1", "w1", host="elsewhere", pid=1, attempt=1, ttl_s=0.05)
        time.sleep(0.1)
        store.acquire_lease("r1", "w2", host=HOST, pid=os.getpid(), attempt=2, ttl_s=30)
        assert store.get_lease("r1").holder == "w2"  # type: ignore[union-attr]
        with pytest.raises(LeaseHeld):
            store.renew_lease("r1", "w1", ttl_s=30)

    def test_dead_holder_on_this_host_is_taken_over(self, store: EventStore) -> None:
        dead = _dead_pid()
        store.acquire_lease("r1", "w1", host=HOST, pid=dead, attempt=1, ttl_s=300)
        store.acquire_lease("r1", "w2", host=HOST, pid=os.getpid(), attempt=2, ttl_s=30)
        assert store.get_lease("r1").holder == "w2"  # type: ignore[union-attr]

    def test_dead_pid_on_another_host_still_holds(self, store: EventStore) -> None:
        store.acquire_lease("r1", "w1", host="elsewhere", pid=_dead_pid(), attempt=1, ttl_s=300)
        with pytest.raises(LeaseHeld, match="on elsewhere until"):
            store.acquire_lease("r1", "w2", host=HOST, pid=os.getpid(), attempt=2, ttl_s=30)

    # ------------------------------------------------------------------ cancellation

    def test_cancel_requests(self, store: EventStore) -> None:
        with pytest.raises(NotFound):
            store.request_cancel("r1")
        store.append("r1", [ev("RunCreated", recipe="sl")], 0)
        assert not store.cancel_requested("r1")
        store.request_cancel("r1")
        store.request_cancel("r1")
        assert store.cancel_requested("r1")
        store.clear_cancel("r1")
        assert not store.cancel_requested("r1")

    # ------------------------------------------------------------------ snapshots

    def _snapshotted_run(self, store: EventStore, run_id: str = "r1") -> None:
        store.append(run_id, [ev("RunCreated", recipe="sl"), ev("A"), ev("B")], 0)

    def test_snapshot_reads_back_sealed_to_its_event(self, store: EventStore) -> None:
        self._snapshotted_run(store)
        written = store.write_snapshot("r1", 2, "v1", '{"state": "at 2"}')
        got = store.read_snapshot("r1", "v1")
        assert got is not None and got == written
        assert (got.seq, got.version, got.state) == (2, "v1", '{"state": "at 2"}')
        assert got.event_hash == store.read("r1")[1].hash
        assert got.recorded_at.tzinfo is not None
        assert store.read_snapshot("r1", "v2") is None  # another fold's version: not seen
        assert store.read_snapshot("r2", "v1") is None

    def test_newest_at_or_before_upto(self, store: EventStore) -> None:
        self._snapshotted_run(store)
        for seq in (1, 3):
            store.write_snapshot("r1", seq, "v1", f"state {seq}", keep=5)
        assert store.read_snapshot("r1", "v1").seq == 3  # type: ignore[union-attr]
        assert store.read_snapshot("r1", "v1", upto_seq=2).seq == 1  # type: ignore[union-attr]
        assert store.read_snapshot("r1", "v1", upto_seq=3).seq == 3  # type: ignore[union-attr]

    def test_writing_keeps_the_newest_and_drops_other_versions(self, store: EventStore) -> None:
        self._snapshotted_run(store)
        self._snapshotted_run(store, "r2")
        store.write_snapshot("r1", 1, "old", "old fold")
        store.write_snapshot("r2", 1, "old", "another run's")
        for seq in (1, 2, 3):
            store.write_snapshot("r1", seq, "new", f"state {seq}", keep=2)
        with store.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT run_id, version, seq FROM snapshots ORDER BY run_id, seq")
            ).all()
        assert [tuple(r) for r in rows] == [("r1", "new", 2), ("r1", "new", 3), ("r2", "old", 1)]
        store.write_snapshot("r1", 3, "new", "state 3 again", keep=2)  # the same seq: replaced
        assert store.read_snapshot("r1", "new").state == "state 3 again"  # type: ignore[union-attr]

    def test_snapshot_of_a_missing_event_is_refused(self, store: EventStore) -> None:
        self._snapshotted_run(store)
        with pytest.raises(StoreError, match="no event at seq 4"):
            store.write_snapshot("r1", 4, "v1", "{}")
        with pytest.raises(InvalidRunId):
            store.write_snapshot("../x", 1, "v1", "{}")

    def test_a_damaged_snapshot_is_skipped_for_an_older_one(self, store: EventStore) -> None:
        self._snapshotted_run(store)
        store.write_snapshot("r1", 1, "v1", "state 1", keep=5)
        store.write_snapshot("r1", 3, "v1", "state 3", keep=5)
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE snapshots SET state = 'state 3!' WHERE seq = 3"))
        assert store.read_snapshot("r1", "v1").seq == 1  # type: ignore[union-attr]
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE snapshots SET sha256 = :h WHERE seq = 1"), {"h": "0" * 64})
        assert store.read_snapshot("r1", "v1") is None

    def test_a_snapshot_of_another_history_is_skipped(self, store: EventStore) -> None:
        """Sealed to the event's hash: the same run id with other events (a database put
        back from elsewhere) does not match, even with a sha256 that fits its contents."""
        from kitchen.store.canonical import snapshot_hash

        self._snapshotted_run(store)
        store.write_snapshot("r1", 2, "v1", "state 2")
        other = "f" * 64
        with store.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE snapshots SET event_hash = :e, sha256 = :h"),
                {"e": other, "h": snapshot_hash("r1", "v1", 2, other, "state 2")},
            )
        assert store.read_snapshot("r1", "v1") is None

    def test_delete_snapshots(self, store: EventStore) -> None:
        self._snapshotted_run(store)
        self._snapshotted_run(store, "r2")
        store.write_snapshot("r1", 1, "v1", "a")
        store.write_snapshot("r2", 1, "v1", "b")
        assert store.delete_snapshots("r1") == 1
        assert store.read_snapshot("r1", "v1") is None
        assert store.read_snapshot("r2", "v1") is not None
        assert store.delete_snapshots() == 1
        assert store.read("r1")[-1].seq == 3  # the log is untouched
