"""Many writer processes at once, on SQLite and on Postgres, with the same code."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitchen.store import StoredEvent, open_store, upgrade

WORKERS = 8
SCRIPT = Path(__file__).with_name("_workers.py")

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    upgrade(url)
    return url


class Workers:
    """Start writer processes that all begin when ``go()`` is called."""

    def __init__(self, tmp: Path, mode: str, url: str, n: int) -> None:
        self.go_file = tmp / f"go-{mode}"
        env = os.environ | {"KITCHEN_TEST_GO": str(self.go_file)}
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(SCRIPT), mode, url, str(w), str(n)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for w in range(WORKERS)
        ]

    def go(self) -> None:
        self.go_file.touch()

    def running(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def wait(self) -> list[int]:
        outputs = [p.communicate(timeout=120) for p in self.procs]
        for proc, (_out, err) in zip(self.procs, outputs, strict=True):
            assert proc.returncode == 0, err
        return [int(out) for out, _ in outputs]

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Workers]]:
    started: list[Workers] = []
    yield started
    for w in started:
        w.kill()


def test_writers_racing_on_one_run(db_url: str, tmp_path: Path, workers: list[Workers]) -> None:
    n = 500
    pool = Workers(tmp_path, "shared", db_url, n)
    workers.append(pool)
    pool.go()
    conflicts = pool.wait()
    store = open_store(db_url)
    found = store.read("shared")
    assert [e.seq for e in found] == list(range(1, WORKERS * n + 1))
    assert sorted((e.payload["w"], e.payload["i"]) for e in found) == [
        (w, i) for w in range(WORKERS) for i in range(n)
    ]
    for w in range(WORKERS):  # each worker's own appends stay in its order
        assert [e.payload["i"] for e in found if e.payload["w"] == w] == list(range(n))
    assert store.verify("shared").ok
    assert store.get_run("shared").last_seq == WORKERS * n  # type: ignore[union-attr]
    assert sum(conflicts) > 0  # they really raced
    store.close()


def test_tailing_reader_sees_every_event_once_in_order(
    db_url: str, tmp_path: Path, workers: list[Workers]
) -> None:
    n = 150  # appends per worker, batches of 1-3 events: 300 events each
    per_worker = sum(1 + i % 3 for i in range(n))
    pool = Workers(tmp_path, "own", db_url, n)
    workers.append(pool)
    store = open_store(db_url)
    seen: list[StoredEvent] = []
    pool.go()
    deadline = time.monotonic() + 90
    while len(seen) < WORKERS * per_worker and time.monotonic() < deadline:
        batch = store.read_all(after_position=seen[-1].position if seen else 0, limit=500)
        seen.extend(batch)
        if not batch:
            if not pool.running():
                seen.extend(store.read_all(after_position=seen[-1].position if seen else 0))
                break
            time.sleep(0.002)
    pool.wait()
    positions = [e.position for e in seen]
    assert all(a < b for a, b in itertools.pairwise(positions))
    assert len(seen) == WORKERS * per_worker
    for w in range(WORKERS):
        mine = [e for e in seen if e.run_id == f"own-{w}"]
        assert [e.seq for e in mine] == list(range(1, per_worker + 1))
    assert [e.position for e in store.read_all()] == positions
    store.close()


def test_racing_for_one_lease_exactly_one_wins(
    db_url: str, tmp_path: Path, workers: list[Workers]
) -> None:
    pool = Workers(tmp_path, "lease", db_url, 1)
    workers.append(pool)
    pool.go()
    won = pool.wait()
    assert sorted(won) == [0] * (WORKERS - 1) + [1]
    store = open_store(db_url)
    lease = store.get_lease("contested")
    assert lease is not None
    assert lease.holder == f"w{won.index(1)}"
    store.close()
