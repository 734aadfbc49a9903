"""Activities: a stage records a result through ``ctx.record_activity`` and the runner commits
it before the call returns, even inside a ``hot`` stage whose own events wait for the step's
commit; a resumed attempt reads it back, superseded or not; a large result is a blob."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakeflow import RUN_ID, FakeConfig, created, folded, history, identity, make_runner

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.cli.replay import verify_blobs
from kitchen.engine import snapshots
from kitchen.engine.runner import EXIT_OK, StageContext
from kitchen.errors import CheckpointCorrupt, ConfigError
from kitchen.stage_api import ActivityResult, NoActivityLog
from kitchen.store import EventStore

S, C = "StageStarted", "StageCompleted"


class Crash(BaseException):
    """Stands for the process dying: nothing in the runner may catch it."""


def test_a_recorded_activity_is_committed_before_the_stage_goes_on(
    store: EventStore, home: Path, blobs: LocalBlobStore
) -> None:
    seen: list[Any] = []

    def judge(ctx: StageContext) -> None:
        before = len(store.read(RUN_ID))
        ctx.record_activity(
            ActivityResult("judge/1", "judge", {"score": 0.75, "why": "close"}, step=1)
        )
        rows = store.read(RUN_ID)
        seen.append((before, [r.type for r in rows[before:]], rows[-1].payload))
        got = ctx.activity("judge/1")
        assert got is not None
        seen.append((got.status, dict(got.result or {}), got.attempt, got.recovered))

    config = FakeConfig(steps=3)
    runner = make_runner(store, home, config=config, blobs=blobs, hooks={("train", 1): judge})
    assert runner.start(created(RUN_ID, config)) == EXIT_OK

    # Inside the hot train stage of step 1, the step's own StageStarted/StageCompleted events
    # (get_batch's, train's start) were pending: the activity's commit took them along.
    before, committed, payload = seen[0]
    assert before == 10
    assert committed == [S, C, S, "ActivityCompleted"]
    assert payload == {
        "key": "judge/1",
        "kind": "judge",
        "step": 1,
        "attempt": 1,
        "result": {"score": 0.75, "why": "close"},
        "blob": None,
        "recovered": False,
    }
    assert seen[1] == ("completed", {"score": 0.75, "why": "close"}, 1, False)
    assert folded(store).activities["judge/1"].result == {"score": 0.75, "why": "close"}


def test_a_large_result_is_a_blob_read_back_and_checked(
    store: EventStore, home: Path, blobs: LocalBlobStore
) -> None:
    big = {"observation": list(range(1000))}
    read: list[Any] = []

    def record(ctx: StageContext) -> None:
        ctx.record_activity(ActivityResult("env/0", "env_step", big, step=0))
        got = ctx.activity("env/0")
        read.append(None if got is None else got.result)

    config = FakeConfig(steps=1)
    runner = make_runner(store, home, config=config, blobs=blobs, hooks={("train", 0): record})
    assert runner.start(created(RUN_ID, config)) == EXIT_OK
    assert read == [big]
    [row] = [r for r in store.read(RUN_ID) if r.type == "ActivityCompleted"]
    assert row.payload["result"] == {}
    blob = row.payload["blob"]
    assert blob["kind"] == "activity" and blob["uri"].startswith(f"{RUN_ID}/artifacts/activity/")
    assert json.loads((home / blob["uri"]).read_bytes()) == big
    verified = verify_blobs(folded(store), store.read(RUN_ID), home, 0)
    assert verified["activity_blobs"] == 1

    # a damaged blob is refused in one line, not read as a result, and fails verification
    (home / blob["uri"]).write_text("{}")
    with pytest.raises(CheckpointCorrupt, match=r"activity env/0 .*sha256 mismatch"):
        verify_blobs(folded(store), store.read(RUN_ID), home, 0)
    runner2 = make_runner(store, home, config=config, blobs=blobs)
    runner2.uow.refold()
    with pytest.raises(ConfigError, match="missing or corrupt"):
        runner2._journal.get("env/0")


def test_a_started_activity_without_its_result_is_seen_by_the_resumed_attempt(
    store: EventStore, home: Path, blobs: LocalBlobStore
) -> None:
    """The start is committed before the work; a crash after it leaves an unknown outcome
    that the next attempt sees, although a resume from the start supersedes the step."""

    def start_then_die(ctx: StageContext) -> None:
        ctx.start_activity("tool/1", "tool", step=1)
        raise Crash

    config = FakeConfig(steps=2)
    first = make_runner(
        store, home, config=config, blobs=blobs, hooks={("train", 1): start_then_die}
    )
    with pytest.raises(Crash):
        first.start(created(RUN_ID, config))
    assert history(store)[-1] == ("ActivityStarted",)

    seen: list[Any] = []

    def look(ctx: StageContext) -> None:
        got = ctx.activity("tool/1")
        assert got is not None
        seen.append((got.status, got.attempt, got.result))
        ctx.record_activity(ActivityResult("tool/1", "tool", {"ok": True}, step=1, recovered=True))

    second = make_runner(store, home, config=config, blobs=blobs, hooks={("train", 1): look})
    assert second.resume(identity(config)) == EXIT_OK
    assert seen == [("started", 1, None)]
    state = folded(store)
    a = state.activities["tool/1"]
    assert (a.status, a.attempt, a.recovered, a.result) == ("completed", 2, True, {"ok": True})
    assert state.is_superseded(a.seq) is False


def test_activities_survive_a_snapshot(
    store: EventStore, home: Path, blobs: LocalBlobStore
) -> None:
    def record(ctx: StageContext) -> None:
        ctx.start_activity("a", "tool", step=0)
        ctx.record_activity(ActivityResult("b", "tool", {"x": [1, 2]}, step=0))

    config = FakeConfig(steps=1)
    runner = make_runner(store, home, config=config, blobs=blobs, hooks={("train", 0): record})
    assert runner.start(created(RUN_ID, config)) == EXIT_OK
    state = folded(store)
    assert snapshots.decode(snapshots.encode(state)) == state
    assert {k: v.status for k, v in state.activities.items()} == {
        "a": "started",
        "b": "completed",
    }


def test_a_process_that_cannot_record_refuses_in_one_line() -> None:
    with pytest.raises(ConfigError, match="recorded on one process only"):
        NoActivityLog().record([ActivityResult("k", "tool", {})])
