"""Leases: one run, one worker. A second worker is refused (exit code 3); a dead worker's lease
is taken over at once; a worker whose lease was taken stops without writing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakeflow import RUN_ID, FakeConfig, created, folded, history, identity, make_runner

from kitchen.engine.runner import EXIT_CONFLICT, EXIT_OK, StageContext
from kitchen.errors import ConfigError, KitchenError, LeaseHeld
from kitchen.store import EventStore, open_store

FAKEFLOW = Path(__file__).with_name("fakeflow.py")
S, C = "StageStarted", "StageCompleted"

# Leases are rows that the two back-ends lock differently: every test runs on both.
pytestmark = pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def test_a_second_worker_on_a_live_run_is_refused(
    db_url: str, store: EventStore, home: Path
) -> None:
    config = FakeConfig(steps=3)
    refused: list[KitchenError] = []

    def second_worker(ctx: StageContext) -> None:
        with open_store(db_url) as other:
            intruder = make_runner(other, home, config=config)
            try:
                intruder.resume(identity(config))
            except KitchenError as exc:
                refused.append(exc)
            try:
                intruder.start(created(RUN_ID, config))
            except KitchenError as exc:
                refused.append(exc)

    first = make_runner(store, home, config=config, hooks={("train", 1): second_worker})
    assert first.start(created(RUN_ID, config)) == EXIT_OK

    assert [type(e) for e in refused] == [LeaseHeld, ConfigError]
    assert refused[0].exit_code == EXIT_CONFLICT == 3
    assert f"held by pid {os.getpid()} on {socket.gethostname()}" in str(refused[0])
    assert f"kitchen resume {RUN_ID}" in str(refused[1])
    assert [h for h in history(store) if h[0] in ("RunCreated", "AttemptStarted")] == [
        ("RunCreated",),
        ("AttemptStarted", 1),
    ]
    assert folded(store).status == "completed"


def test_two_workers_starting_one_run_at_once_only_one_proceeds(
    db_url: str, store: EventStore, home: Path
) -> None:
    config = FakeConfig(steps=2)
    gate = threading.Barrier(2)
    outcomes: list[object] = []

    def slow_setup(ctx: StageContext) -> None:
        time.sleep(0.3)  # keep the winner busy while the other one tries

    def worker() -> None:
        with open_store(db_url) as own:
            runner = make_runner(own, home, config=config, hooks={("setup", 0): slow_setup})
            gate.wait(10)
            try:
                outcomes.append(runner.start(created(RUN_ID, config)))
            except KitchenError as exc:
                outcomes.append(type(exc))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert [o for o in outcomes if o == EXIT_OK] == [EXIT_OK]
    # Refused by the lease while the winner runs, or as an existing run once it is done.
    assert [o for o in outcomes if o != EXIT_OK] in ([LeaseHeld], [ConfigError])
    assert [h for h in history(store) if h[0] in ("RunCreated", "AttemptStarted")] == [
        ("RunCreated",),
        ("AttemptStarted", 1),
    ]
    assert folded(store).status == "completed"


def test_a_dead_workers_lease_is_taken_over_at_once(
    db_url: str, store: EventStore, home: Path
) -> None:
    # The worker kills itself (SIGKILL) just before train of step 1: a crash, lease left behind.
    crashed = subprocess.Popen(
        [sys.executable, str(FAKEFLOW), "start", db_url, str(home), RUN_ID, "--steps", "3"],
        env={**os.environ, "KITCHEN_FAULT": "stage:train:before@2"},
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = crashed.communicate(timeout=120)
    assert crashed.returncode == -9, err
    lease = store.get_lease(RUN_ID)
    assert lease is not None
    assert (lease.pid, lease.host) == (crashed.pid, socket.gethostname())
    assert lease.expires_at > datetime.now(UTC)  # not expired: its holder is simply gone
    assert not lease.is_live()
    # Committed up to the end of step 0; step 1's first events died with the process.
    assert len(store.read(RUN_ID)) == 10
    assert folded(store).status == "running"

    t0 = time.monotonic()
    code = make_runner(store, home, config=FakeConfig(steps=3)).resume(
        identity(FakeConfig(steps=3))
    )
    took = time.monotonic() - t0

    assert code == EXIT_OK
    assert took < 5.0, f"resume waited {took:.1f}s for a dead worker's lease"
    assert history(store)[10:12] == [("AttemptStarted", 2), ("RunResumed",)]
    state = folded(store)
    assert [a.ended for a in state.attempts] == ["crashed", "completed"]
    assert state.attempts[0].pid == crashed.pid
    assert store.get_lease(RUN_ID) is None


def test_a_worker_whose_lease_was_taken_stops_without_writing(
    store: EventStore, home: Path
) -> None:
    def lose_the_lease(ctx: StageContext) -> None:
        time.sleep(0.3)  # the lease (ttl 0.2 s) expires while this step runs
        store.acquire_lease(RUN_ID, "another-worker", host="elsewhere", pid=1, attempt=2, ttl_s=60)

    config = FakeConfig(steps=3)
    runner = make_runner(
        store, home, config=config, hooks={("train", 1): lose_the_lease}, lease_ttl_s=0.2
    )
    with pytest.raises(LeaseHeld) as refused:
        runner.start(created(RUN_ID, config))

    assert refused.value.exit_code == EXIT_CONFLICT
    # Nothing of step 1 was committed: the new holder owns what happens next.
    assert len(store.read(RUN_ID)) == 10
    assert history(store)[-1] == (C, "log_step_metrics", 0)
    lease = store.get_lease(RUN_ID)
    assert lease is not None and lease.holder == "another-worker"
