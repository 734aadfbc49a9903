"""``kitchen watch``: a watcher started first sees the events of a run started after it, on
SQLite and on Postgres, filtered by run when asked, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kitchen.store import open_store

from .conftest import KITCHEN, add, attempt, created, losses

DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class Watcher:
    """``kitchen watch ARGS`` in the background, its stdout lines in a queue."""

    def __init__(self, url: str, home: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KITCHEN_", "OTEL_"))}
        env |= {"KITCHEN_HOME": str(home), "KITCHEN_DB_URL": url}
        self.proc = subprocess.Popen(
            [KITCHEN, "watch", *args, "--interval", "0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.started = threading.Event()
        self.readers = [
            threading.Thread(target=self._pump, daemon=True),
            threading.Thread(target=self._wait_banner, daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def _wait_banner(self) -> None:
        assert self.proc.stderr
        for line in self.proc.stderr:
            if line.startswith("watching"):
                self.started.set()

    def take(self, n: int, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        got: list[str] = []
        while len(got) < n:
            got.append(self.lines.get(timeout=max(deadline - time.monotonic(), 0.01)))
        return got

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        for reader in self.readers:
            reader.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe:
                pipe.close()
        return code


@pytest.mark.parametrize("db", DATABASES)
def test_watch_shows_a_run_started_after_it(
    db: str, request: pytest.FixtureRequest, home: Path
) -> None:
    url = request.getfixturevalue(f"{db}_url")
    store = open_store(url)
    add(store, "before", created("before"))  # already there: not shown
    everything = Watcher(url, home)
    only_late = Watcher(url, home, "late")
    try:
        assert everything.started.wait(60) and only_late.started.wait(60)
        add(store, "late", created("late"), attempt(1, 4242))
        add(store, "other", created("other"))
        add(store, "late", losses(0, 2.5))
        seen = [line.split() for line in everything.take(4)]
        # POSITION TIME RUN SEQ TYPE [STAGE STEP]
        assert [row[2:5] for row in seen] == [
            ["late", "1", "RunCreated"],
            ["late", "2", "AttemptStarted"],
            ["other", "1", "RunCreated"],
            ["late", "3", "StageCompleted"],
        ]
        assert seen[3][5:] == ["log_step_metrics", "0"]
        assert [int(row[0]) for row in seen] == sorted(int(row[0]) for row in seen)
        filtered = [line.split()[2:5] for line in only_late.take(3)]
        assert filtered == [
            ["late", "1", "RunCreated"],
            ["late", "2", "AttemptStarted"],
            ["late", "3", "StageCompleted"],
        ]
        assert only_late.lines.empty()
    finally:
        codes = (everything.stop(), only_late.stop())
        store.close()
    assert codes == (0, 0)  # Ctrl-C is how a watch ends: a clean exit


def test_watch_since_replays_the_log_and_refuses_a_bad_run_id(sqlite_url: str, home: Path) -> None:
    store = open_store(sqlite_url)
    add(store, "old", created("old"), attempt(1, 4242))
    store.close()
    w = Watcher(sqlite_url, home, "old", "--since", "0")
    try:
        assert [line.split()[2:5] for line in w.take(2)] == [
            ["old", "1", "RunCreated"],
            ["old", "2", "AttemptStarted"],
        ]
    finally:
        assert w.stop() == 0
    bad = Watcher(sqlite_url, home, "../etc")
    bad.proc.wait(timeout=60)
    assert bad.stop() == 2
