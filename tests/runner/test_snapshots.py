"""Snapshots written by the runner: each one is the fold of the log at its seq, times included,
and a resume folds from the newest one and ends where a fold of the whole log ends."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from fakeflow import RUN_ID, FakeConfig, created, folded, identity, make_runner

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.engine import snapshots
from kitchen.engine.runner import EXIT_INTERRUPTED, EXIT_OK, StageContext
from kitchen.engine.state import RunState, fold
from kitchen.store import EventStore

BOTH_DATABASES = pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def _snapshots(store: EventStore) -> list[RunState]:
    """Every snapshot of the run that verifies, oldest first."""
    found: list[RunState] = []
    upto = None
    while (state := snapshots.usable(store, RUN_ID, upto)) is not None:
        found.insert(0, state)
        upto = state.last_seq - 1
    return found


def _check_against_the_log(store: EventStore) -> list[int]:
    records = snapshots.recorded(store.read(RUN_ID))
    seqs = []
    for snap in _snapshots(store):
        assert snap == fold(RUN_ID, records[: snap.last_seq]), snap.last_seq
        seqs.append(snap.last_seq)
    return seqs


@BOTH_DATABASES
def test_snapshots_are_the_fold_of_the_log_at_their_seq(store: EventStore, home: Path) -> None:
    config = FakeConfig(steps=8, save_every=2)
    runner = make_runner(store, home, config=config, blobs=LocalBlobStore(home), snapshot_every=15)
    assert runner.start(created(RUN_ID, config)) == EXIT_OK
    last = store.last_seq(RUN_ID)
    seqs = _check_against_the_log(store)
    # the newest two are kept; the last one is taken where the attempt ended
    assert len(seqs) == 2 and seqs[0] < seqs[1] == last
    # the runner's own state is the fold of its log too, times included
    assert runner.state == folded(store)
    assert runner.state.created_at is not None and runner.state.attempts[0].started_at


@BOTH_DATABASES
def test_resume_folds_from_the_newest_snapshot(store: EventStore, home: Path) -> None:
    def interrupt(ctx: StageContext) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    config = FakeConfig(steps=8, save_every=2)
    first = make_runner(
        store,
        home,
        config=config,
        blobs=LocalBlobStore(home),
        hooks={("get_batch", 6): interrupt},
        handle_signals=True,
        snapshot_every=10,
    )
    assert first.start(created(RUN_ID, config)) == EXIT_INTERRUPTED
    before = _snapshots(store)
    assert before and before[-1].last_seq == store.last_seq(RUN_ID)  # taken at the interruption
    assert before[-1].status == "interrupted"

    second = make_runner(store, home, config=config, blobs=LocalBlobStore(home), snapshot_every=10)
    state = second.uow.refold()
    assert second.uow.snapshot_seq == before[-1].last_seq  # folded from it, nothing after it
    assert state == folded(store)
    assert second.resume(identity(config)) == EXIT_OK
    assert second.state == folded(store)
    assert second.state.status == "completed"
    _check_against_the_log(store)


def test_a_resume_without_a_usable_snapshot_writes_one(store: EventStore, home: Path) -> None:
    def interrupt(ctx: StageContext) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    config = FakeConfig(steps=6)
    first = make_runner(
        store,
        home,
        config=config,
        blobs=LocalBlobStore(home),
        hooks={("get_batch", 4): interrupt},
        handle_signals=True,
        snapshot_every=0,  # none written
    )
    assert first.start(created(RUN_ID, config)) == EXIT_INTERRUPTED
    assert _snapshots(store) == []
    interrupted_at = store.last_seq(RUN_ID)

    second = make_runner(store, home, config=config, blobs=LocalBlobStore(home), snapshot_every=10)
    second.uow.refold()  # a long fold (more than 10 events): rebuilt at once
    assert [s.last_seq for s in _snapshots(store)] == [interrupted_at]
    assert second.resume(identity(config)) == EXIT_OK
    _check_against_the_log(store)
