"""Interruption and resume: SIGINT and SIGTERM on a worker process, resume from its checkpoint
in a new process, and re-executed steps compared with the logged ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fakeflow import RUN_ID, FakeConfig, created, folded, history, identity, make_runner

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.engine.runner import EXIT_INTERRUPTED, EXIT_OK, EXIT_PREEMPTED, StageContext
from kitchen.store import EventStore

FAKEFLOW = Path(__file__).with_name("fakeflow.py")
S, C = "StageStarted", "StageCompleted"

# Outcomes that depend on how the database commits and locks are checked on both back-ends.
BOTH_DATABASES = pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _worker(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(FAKEFLOW), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(marker: Path, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited {proc.returncode}: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the worker never reached the marker")
        time.sleep(0.02)


@BOTH_DATABASES
def test_sigint_interrupts_and_a_new_process_resumes_from_the_checkpoint(
    db_url: str, store: EventStore, home: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    args = [db_url, str(home), RUN_ID, "--steps", "6", "--save-every", "2"]
    proc = _worker("start", *args, "--marker", str(marker), "--marker-at", "train:3")
    _wait_for(marker, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == EXIT_INTERRUPTED == 130, err
    assert "SIGINT received" in err
    # fmt: off
    assert history(store)[16:] == [
        (S, "save_checkpoint", 1), (C, "save_checkpoint", 1),
        ("CheckpointSaved", 2),                                            # seq 19
        (S, "get_batch", 1), (C, "get_batch", 2),
        (S, "train", 2), (C, "train", 2),
        (S, "log_step_metrics", 2), (C, "log_step_metrics", 2),
        (S, "get_batch", 2), (C, "get_batch", 3),
        (S, "train", 3), (C, "train", 3),                                  # signalled here
        ("AttemptInterrupted", 1),                                         # seq 30
    ]
    # fmt: on
    assert store.read(RUN_ID)[-1].payload == {"attempt": 1, "signal": "SIGINT", "step": 3}
    state = folded(store)
    assert (state.status, state.attempts[-1].ended) == ("interrupted", "interrupted")
    assert store.get_lease(RUN_ID) is None

    resumed = _worker("resume", *args)
    _, err = resumed.communicate(timeout=120)

    assert resumed.returncode == EXIT_OK, err
    # fmt: off
    assert history(store)[30:] == [
        ("AttemptStarted", 2),
        ("RunResumed",),
        # set-up runs again, at the checkpoint's step, without moving the machine
        (S, "setup", 2), (C, "setup", 2),
        # step 2 again: the first step after the checkpoint
        (S, "get_batch", 2), (C, "get_batch", 2),
        (S, "train", 2), (C, "train", 2),
        (S, "log_step_metrics", 2), (C, "log_step_metrics", 2),
        (S, "get_batch", 2), (C, "get_batch", 3),
        (S, "train", 3), (C, "train", 3),
        (S, "log_step_metrics", 3), (C, "log_step_metrics", 3),
        (S, "save_checkpoint", 3), (C, "save_checkpoint", 3),
        ("CheckpointSaved", 4),
        (S, "get_batch", 3), (C, "get_batch", 4),
        (S, "train", 4), (C, "train", 4),
        (S, "log_step_metrics", 4), (C, "log_step_metrics", 4),
        (S, "get_batch", 4), (C, "get_batch", 5),
        (S, "train", 5), (C, "train", 5),
        (S, "log_step_metrics", 5), (C, "log_step_metrics", 5),
        (S, "cleanup", 5), (C, "cleanup", 5),
        ("RunCompleted", 5),
    ]
    # fmt: on
    events = store.read(RUN_ID)
    assert events[30].payload["resumed_from"] == 19
    resume = events[31].payload
    assert (resume["from_checkpoint_seq"], resume["from_step"], resume["machine_state"]) == (
        19,
        2,
        "save_checkpoint",
    )
    assert (resume["cursor"], resume["differences"], resume["forced"]) == (
        {"epoch": 0, "batch_index": 2},
        [],
        False,
    )
    assert (events[32].payload["source"], events[32].payload["dest"]) == (
        "save_checkpoint",
        "save_checkpoint",
    )
    state = folded(store)
    assert state.status == "completed"
    assert [a.ended for a in state.attempts] == ["interrupted", "completed"]
    assert state.superseded == ((20, 30),)
    assert sorted(state.step_metrics) == [0, 1, 2, 3, 4, 5]
    assert sorted(state.superseded_metrics) == [2]  # step 3 was signalled before it logged
    assert state.mismatches == ()
    assert [c.step for c in state.checkpoints] == [2, 4]


@SQLITE
def test_sigterm_preempts_a_workflow_without_preemption_checkpoints_at_the_next_step(
    db_url: str, store: EventStore, home: Path, tmp_path: Path
) -> None:
    """The fake workflow's conditions take no preemption checkpoint: the attempt finishes the
    step in flight and stops before the next one begins, exit 143. (A signal that arrives
    when every finished step is in a checkpoint stops the attempt at the next stage.)"""
    marker = tmp_path / "started"
    args = [db_url, str(home), RUN_ID, "--steps", "6", "--save-every", "4"]
    proc = _worker("start", *args, "--marker", str(marker), "--marker-at", "train:2")
    _wait_for(marker, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == EXIT_PREEMPTED == 143, err
    assert "SIGTERM received; preempted" in err
    # fmt: off
    assert history(store)[-7:] == [
        (S, "get_batch", 1), (C, "get_batch", 2),
        (S, "train", 2), (C, "train", 2),                                  # signalled here
        (S, "log_step_metrics", 2), (C, "log_step_metrics", 2),
        ("AttemptInterrupted", 1),                                         # not get_batch
    ]
    # fmt: on
    stop = store.read(RUN_ID)[-1].payload
    assert stop == {"attempt": 1, "signal": "SIGTERM", "step": 2, "reason": "preempted"}
    assert store.get_lease(RUN_ID) is None


@SQLITE
def test_the_watchdog_ends_a_preempted_process_stuck_in_a_stage(
    db_url: str, store: EventStore, home: Path, tmp_path: Path
) -> None:
    """A handler cannot interrupt a running operation: KITCHEN_GRACE_S after SIGUSR1 the
    process exits 143 without ending the attempt, and the next attempt re-executes the steps
    after the newest checkpoint."""
    marker = tmp_path / "started"
    args = [db_url, str(home), RUN_ID, "--steps", "6", "--save-every", "2"]
    env = {**os.environ, "KITCHEN_GRACE_S": "1"}
    stall = ("--marker", str(marker), "--marker-at", "train:3", "--stall")
    proc = subprocess.Popen(
        [sys.executable, str(FAKEFLOW), "start", *args, *stall],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    _wait_for(marker, proc)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == EXIT_PREEMPTED, err
    assert time.monotonic() - t0 < 20  # not the minute the stage would have taken
    assert "no checkpoint on record 1s after the signal" in err
    assert "AttemptInterrupted" not in {e[0] for e in history(store)}  # never ended on record
    resumed = _worker("resume", *args)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == EXIT_OK, err
    state = folded(store)
    assert state.status == "completed"
    assert sorted(state.superseded_metrics) == [2]  # step 2 ran again from checkpoint 2


def test_a_resume_from_the_start_that_logs_a_different_loss_records_a_mismatch(
    store: EventStore, home: Path
) -> None:
    def interrupt(ctx: StageContext) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    def perturbed(step: int, attempt: int) -> float:
        return 1.0 / (step + 1) + (0.25 if (attempt, step) == (2, 1) else 0.0)

    config = FakeConfig(steps=4)
    first = make_runner(
        store, home, config=config, hooks={("get_batch", 3): interrupt}, handle_signals=True
    )
    assert first.start(created(RUN_ID, config)) == EXIT_INTERRUPTED
    assert len(store.read(RUN_ID)) == 25
    assert history(store)[-3:] == [
        (S, "get_batch", 2),
        (C, "get_batch", 3),
        ("AttemptInterrupted", 1),
    ]
    assert store.read(RUN_ID)[-1].payload == {"attempt": 1, "signal": "SIGINT", "step": 3}

    second = make_runner(store, home, config=config, train_loss=perturbed)
    assert second.resume(identity(config)) == EXIT_OK

    # fmt: off
    expected: list[tuple[Any, ...]] = [
        ("AttemptStarted", 2),
        ("RunResumed",),  # no checkpoint: from the start
        (S, "setup", 0), (C, "setup", 0),
        (S, "get_batch", 0), (C, "get_batch", 0),
        (S, "train", 0), (C, "train", 0),
        (S, "log_step_metrics", 0), (C, "log_step_metrics", 0),
        (S, "get_batch", 0), (C, "get_batch", 1),
        (S, "train", 1), (C, "train", 1),
        (S, "log_step_metrics", 1), (C, "log_step_metrics", 1),
        ("DeterminismMismatch", 1),                                        # seq 42
        (S, "get_batch", 1), (C, "get_batch", 2),
        (S, "train", 2), (C, "train", 2),
        (S, "log_step_metrics", 2), (C, "log_step_metrics", 2),
        (S, "get_batch", 2), (C, "get_batch", 3),
        (S, "train", 3), (C, "train", 3),
        (S, "log_step_metrics", 3), (C, "log_step_metrics", 3),
        (S, "cleanup", 3), (C, "cleanup", 3),
        ("RunCompleted", 3),
    ]
    # fmt: on
    assert history(store)[25:] == expected
    events = store.read(RUN_ID)
    assert events[41].payload == {
        "step": 1,
        "metric": "train_mean_nll",
        "logged": 0.5,
        "replayed": 0.75,
        "tolerance": 1e-6,
        "logged_seq": 16,  # log_step_metrics of step 1 in the first attempt
        "relative_tolerance": 0.0,  # nothing that moves floats changed between the attempts
        "changed": [],
    }
    assert events[26].payload["from_checkpoint_seq"] is None
    assert events[26].payload["machine_state"] == "start"
    state = folded(store)
    assert state.status == "completed"
    assert [(m.step, m.logged, m.replayed, m.seq) for m in state.mismatches] == [(1, 0.5, 0.75, 42)]
    assert state.step_metrics == {
        0: {"train_mean_nll": 1.0},
        1: {"train_mean_nll": 0.75},
        2: {"train_mean_nll": 1 / 3},
        3: {"train_mean_nll": 0.25},
    }
    assert state.superseded == ((1, 25),)


def test_a_signal_while_set_up_is_rebuilt_interrupts_the_resumed_attempt(
    store: EventStore, home: Path, blobs: LocalBlobStore
) -> None:
    """Resuming from a checkpoint re-runs set-up (loading a model can take minutes): a signal
    then must end the attempt as interrupted, not kill the process."""

    def interrupt(ctx: StageContext) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    config = FakeConfig(steps=4, save_every=2)
    first = make_runner(
        store,
        home,
        config=config,
        blobs=blobs,
        hooks={("train", 2): interrupt},
        handle_signals=True,
    )
    assert first.start(created(RUN_ID, config)) == EXIT_INTERRUPTED
    assert len(store.read(RUN_ID)) == 24

    second = make_runner(
        store,
        home,
        config=config,
        blobs=blobs,
        hooks={("setup", 2): interrupt},
        handle_signals=True,
    )
    try:
        code: int | None = second.resume(identity(config))
    except KeyboardInterrupt:  # the process's own handler: what a plain SIGINT would do
        code = None

    assert code == EXIT_INTERRUPTED
    assert history(store)[24:] == [
        ("AttemptStarted", 2),
        ("RunResumed",),
        (S, "setup", 2), (C, "setup", 2),
        ("AttemptInterrupted", 2),
    ]  # fmt: skip
    assert store.read(RUN_ID)[-1].payload == {"attempt": 2, "signal": "SIGINT", "step": 2}

    third = make_runner(store, home, config=config, blobs=blobs)
    assert third.resume(identity(config)) == EXIT_OK
    state = folded(store)
    assert [a.ended for a in state.attempts] == ["interrupted", "interrupted", "completed"]
    assert sorted(state.step_metrics) == [0, 1, 2, 3]
