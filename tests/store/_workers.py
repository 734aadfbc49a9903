"""Writer processes for the concurrency tests (run as a script, one process per worker).

    python _workers.py shared URL WORKER N   # N appends to run "shared", retrying conflicts
    python _workers.py own URL WORKER N      # N appends (batches of 1-3) to run "own-WORKER"
    python _workers.py lease URL WORKER N    # try once to lease run "contested"; 1 if it won

Each waits until the file named by KITCHEN_TEST_GO exists, so that all workers start together,
and prints the number of conflicts it retried. A conflicting worker backs off for a random,
growing moment before it re-reads the run, as any client of an optimistic store should: without
it, eight workers on two cores spend most of their time losing the same race.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from kitchen.errors import ConcurrencyConflict, LeaseHeld
from kitchen.store import NewEvent, open_store


def _wait_for_go() -> None:
    go = Path(os.environ["KITCHEN_TEST_GO"])
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("never told to go")
        time.sleep(0.005)


def shared(url: str, worker: int, n: int) -> int:
    store = open_store(url, migrate=False)
    _wait_for_go()
    conflicts = 0
    seq = store.last_seq("shared")
    for i in range(n):
        streak = 0
        while True:
            try:
                seq = store.append("shared", [NewEvent("E", {"w": worker, "i": i})], seq)[-1].seq
                break
            except ConcurrencyConflict:
                conflicts += 1
                streak += 1
                time.sleep(random.uniform(0, 0.0005 * 2 ** min(streak, 6)))
                seq = store.last_seq("shared")
    store.close()
    return conflicts


def own(url: str, worker: int, n: int) -> int:
    store = open_store(url, migrate=False)
    _wait_for_go()
    run_id, seq = f"own-{worker}", 0
    for i in range(n):
        batch = [NewEvent("E", {"w": worker, "i": i, "k": k}) for k in range(1 + i % 3)]
        seq = store.append(run_id, batch, seq)[-1].seq
    store.close()
    return 0


def lease(url: str, worker: int, _n: int) -> int:
    """The lease names another host, so that its holder counts as live after this exits."""
    store = open_store(url, migrate=False)
    _wait_for_go()
    try:
        store.acquire_lease(
            "contested", f"w{worker}", host="another-host", pid=1, attempt=1, ttl_s=300
        )
    except LeaseHeld:
        return 0
    finally:
        store.close()
    return 1


if __name__ == "__main__":
    mode, url, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print({"shared": shared, "own": own, "lease": lease}[mode](url, worker, n))
