"""Faults outside the run end the attempt resumable (exit 75); errors of the run stay terminal.

The fake workflow's hooks raise what the adapters raise: a full disk (a raw ``OSError`` too),
the Tinker SDK's connection error as the adapter translates it, and the store's
``StoreUnavailable`` past the unit of work's retries. Everything else is real: SQLite, the
blob folder, the runner, the fold.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from fakeflow import RUN_ID, FakeConfig, created, folded, history, identity, make_runner

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.engine import unit_of_work
from kitchen.engine.runner import EXIT_FAILED, EXIT_OK, EXIT_TEMPFAIL, StageContext
from kitchen.errors import (
    ConfigError,
    DiskFull,
    ServiceUnavailable,
    StoreUnavailable,
    TrainingDiverged,
)
from kitchen.store import EventStore

CONFIG = FakeConfig(steps=6, save_every=2)
S, C = "StageStarted", "StageCompleted"


def _raise(exc: BaseException) -> Any:
    def hook(ctx: StageContext[Any, Any]) -> None:
        raise exc

    return hook


def _resume_to_the_end(store: EventStore, home: Path, blobs: LocalBlobStore) -> None:
    code = make_runner(store, home, config=CONFIG, blobs=blobs).resume(identity(CONFIG))
    assert code == EXIT_OK
    state = folded(store)
    assert state.status == "completed"
    assert state.fault is None
    assert list(state.optim_steps) == [0, 1, 2, 3, 4, 5]  # each step once in the effective history


def test_exit_75_is_ex_tempfail() -> None:
    assert EXIT_TEMPFAIL == 75
    assert DiskFull("x").exit_code == ServiceUnavailable("x").exit_code == 75
    assert StoreUnavailable("x").exit_code == 2  # opening an unreachable database: nothing started


def test_a_full_disk_in_a_stage_ends_the_attempt_resumable(
    store: EventStore, home: Path, blobs: LocalBlobStore
) -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/data/run/file.bin")
    hooks = {("log_step_metrics", 3): _raise(full)}
    runner = make_runner(store, home, config=CONFIG, hooks=hooks, blobs=blobs)
    assert runner.start(created(RUN_ID, CONFIG)) == EXIT_TEMPFAIL

    # fmt: off
    assert history(store)[-6:] == [
        (S, "get_batch", 2), (C, "get_batch", 3),
        (S, "train", 3), (C, "train", 3),
        (S, "log_step_metrics", 3),                  # the stage in flight: no StageFailed
        ("AttemptInterrupted", 1),
    ]
    # fmt: on
    last = store.read(RUN_ID)[-1]
    assert (last.type, last.schema_version) == ("AttemptInterrupted", 2)
    assert last.payload == {
        "attempt": 1,
        "step": 3,
        "fault": "disk_full",
        "reason": "cannot write /data/run/file.bin: No space left on device; free space and resume",
        "stage": "log_step_metrics",
    }
    types = [e.type for e in store.read(RUN_ID)]
    assert "RunFailed" not in types and "StageFailed" not in types
    state = folded(store)
    assert (state.status, state.attempts[-1].ended) == ("interrupted", "interrupted")
    assert state.fault == ("disk_full", last.payload["reason"])
    assert store.get_lease(RUN_ID) is None
    _resume_to_the_end(store, home, blobs)


def test_a_full_disk_while_writing_a_checkpoint_blob(
    store: EventStore, home: Path, blobs: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blob store's own translation: the second checkpoint's folder cannot be filled."""
    real = blobs.write_dir
    calls = []

    def write_dir(key: str, fill: Any) -> Any:
        calls.append(key)

        def full(tmp: Path) -> None:
            fill(tmp)
            if len(calls) == 2:
                raise OSError(errno.EDQUOT, "Disk quota exceeded")

        return real(key, full)

    monkeypatch.setattr(blobs, "write_dir", write_dir)
    runner = make_runner(store, home, config=CONFIG, blobs=blobs)
    assert runner.start(created(RUN_ID, CONFIG)) == EXIT_TEMPFAIL
    last = store.read(RUN_ID)[-1]
    assert last.payload["fault"] == "disk_full"
    assert last.payload["reason"] == (
        f"cannot write blob {blobs.root / RUN_ID}/checkpoints/step-000004: Disk quota exceeded; "
        "free space and resume"
    )
    assert [e.payload["step"] for e in store.read(RUN_ID) if e.type == "CheckpointSaved"] == [2]
    assert not list((home / RUN_ID / "checkpoints").glob(".*"))  # no temp folder left behind
    monkeypatch.undo()
    _resume_to_the_end(store, home, blobs)
    resumed = [e.payload for e in store.read(RUN_ID) if e.type == "RunResumed"]
    assert [p["from_step"] for p in resumed] == [2]


def test_a_service_unreachable_ends_the_attempt_resumable(
    store: EventStore, home: Path, blobs: LocalBlobStore
) -> None:
    """The Tinker SDK's connection error, as the adapter translates it, is a fault."""
    httpx = pytest.importorskip("httpx")
    tinker = pytest.importorskip("tinker")
    from kitchen.adapters.tinker.futures import translate

    error = translate(tinker.APIConnectionError(request=httpx.Request("POST", "http://x")), 4)
    assert isinstance(error, ServiceUnavailable)
    hooks = {("train", 4): _raise(error)}
    runner = make_runner(store, home, config=CONFIG, hooks=hooks, blobs=blobs)
    assert runner.start(created(RUN_ID, CONFIG)) == EXIT_TEMPFAIL
    last = store.read(RUN_ID)[-1]
    assert last.payload == {
        "attempt": 1,
        "step": 4,
        "fault": "service_unavailable",
        "reason": "the Tinker service is unreachable: APIConnectionError",
        "stage": "train",
    }
    _resume_to_the_end(store, home, blobs)


class FlakyStore:
    """The real store, with appends (or lease renewals) failing as an unreachable database's
    do while ``down`` is set."""

    def __init__(self, inner: EventStore, what: str) -> None:
        self._inner, self._what, self.down = inner, what, False
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._what:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                self.refused += 1
                raise StoreUnavailable("cannot append in database sqlite:///x: unreachable")
            return attr(*args, **kwargs)

        return call


def test_a_database_unreachable_past_the_retry_budget_is_a_fault_not_on_record(
    store: EventStore, home: Path, blobs: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(unit_of_work, "FIRST_DELAY_S", 0.0)
    monkeypatch.setattr(unit_of_work, "MAX_DELAY_S", 0.0)
    flaky = FlakyStore(store, "append")

    def down(ctx: StageContext[Any, Any]) -> None:
        flaky.down = True

    runner = make_runner(flaky, home, config=CONFIG, hooks={("train", 3): down}, blobs=blobs)
    assert runner.start(created(RUN_ID, CONFIG)) == EXIT_TEMPFAIL
    assert flaky.refused == unit_of_work.RETRIES  # every retry, then nothing more is tried
    # Nothing of step 3 is on record, nor the end: the log says running.
    types = [e.type for e in store.read(RUN_ID)]
    assert "AttemptInterrupted" not in types and "RunFailed" not in types
    assert folded(store).status == "running"
    assert runner.state.fault is not None and runner.state.fault[0] == "store_unavailable"
    _resume_to_the_end(store, home, blobs)


def test_a_lease_renewal_that_fails_briefly_is_ridden_out(
    store: EventStore, home: Path, blobs: LocalBlobStore
) -> None:
    flaky = FlakyStore(store, "renew_lease")

    def down(ctx: StageContext[Any, Any]) -> None:
        flaky.down = True

    def up(ctx: StageContext[Any, Any]) -> None:
        flaky.down = False

    hooks = {("train", 1): down, ("train", 3): up}
    runner = make_runner(store, home, config=CONFIG, hooks=hooks, blobs=blobs)
    runner.guard.store = flaky
    assert runner.start(created(RUN_ID, CONFIG)) == EXIT_OK
    assert flaky.refused > 0
    assert folded(store).status == "completed"


def test_a_lease_renewal_failing_past_half_its_ttl_is_a_fault(
    store: EventStore, home: Path, blobs: LocalBlobStore
) -> None:
    flaky = FlakyStore(store, "renew_lease")

    def down(ctx: StageContext[Any, Any]) -> None:
        flaky.down = True

    runner = make_runner(
        store, home, config=CONFIG, hooks={("train", 1): down}, blobs=blobs, lease_ttl_s=0.0
    )
    runner.guard.store = flaky
    assert runner.start(created(RUN_ID, CONFIG)) == EXIT_TEMPFAIL
    # The database is the fault, so no write of the end is tried: the log says running.
    assert "AttemptInterrupted" not in [e.type for e in store.read(RUN_ID)]
    assert runner.state.fault is not None and runner.state.fault[0] == "store_unavailable"
    _resume_to_the_end(store, home, blobs)


@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        (TrainingDiverged("step 3: loss is nan"), "TrainingDiverged"),
        (ValueError("row 7 of chat.jsonl has no assistant message"), "ValueError"),
        (ConfigError("the backend refuses lora_rank=0"), "ConfigError"),
    ],
)
def test_errors_of_the_run_itself_stay_terminal(
    store: EventStore, home: Path, blobs: LocalBlobStore, error: Exception, error_type: str
) -> None:
    hooks = {("train", 3): _raise(error)}
    runner = make_runner(store, home, config=CONFIG, hooks=hooks, blobs=blobs)
    assert runner.start(created(RUN_ID, CONFIG)) == EXIT_FAILED == 1
    last = store.read(RUN_ID)[-1]
    assert last.type == "RunFailed"
    assert last.payload["error_type"] == error_type
    assert "AttemptInterrupted" not in [e.type for e in store.read(RUN_ID)]
    state = folded(store)
    assert (state.status, state.fault) == ("failed", None)
    with pytest.raises(ConfigError, match="is failed; there is nothing to resume"):
        make_runner(store, home, config=CONFIG, blobs=blobs).resume(identity(CONFIG))
