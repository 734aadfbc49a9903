"""Group commit against one append per request: how long a burst of served requests takes to
be put on record.

``--models`` threads, one per served model, each put ``--requests`` requests on record one
after another (as an SDK client sends a model's requests: the next only once the last is
acknowledged), all at once, through a real journal on a real SQLite file (or ``--db-url``):

- **one by one**: as before group commit, each request's blob written (fsync'd, by its own
  thread), then its event appended in a transaction of its own;
- **group commit**: the blob written the same way, then ``Journal.submit_request``, whose
  committer appends the events waiting together in one transaction.

Interleaved ``--repeats`` times; reports requests per second and the median time a request
waited to be on record, and the groups the committer made.

    python bench/serve_commit.py [--models 16] [--requests 20] [--repeats 3] [--db-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def run(mode: str, work: Path, models: int, requests: int, url: str | None) -> dict[str, Any]:
    from kitchen.serve import ids
    from kitchen.serve import journal as jr
    from kitchen.store import open_store

    home = Path(tempfile.mkdtemp(dir=work))
    store = open_store(url or f"sqlite:///{home / 'kitchen.db'}")
    journal = jr.Journal(store, home)
    session = ids.new_session_id()
    specs = []
    for n in range(models):
        spec = jr.ModelSpec(ids.model_id(session, n), session, n, "key-bench", "kitchen/tiny", 8, n)
        journal.create_model(spec, {"kitchen": "bench"})
        specs.append(spec)
    waits: list[float] = []
    start = threading.Barrier(models + 1)

    def client(spec: jr.ModelSpec) -> None:
        tip = store.last_seq(spec.run_id)
        start.wait()
        for seq_id in range(1, requests + 1):
            body = f"{spec.model_id}:{seq_id}".encode() * 40  # a small forward_backward
            t0 = time.perf_counter()
            ref = journal.put_input(spec.owner, body)
            if mode == "group":
                journal.submit_request(spec, "forward_backward", seq_id, ref, 0, "ready").result()
            else:  # the journal's code before group commit: an append of its own
                event = jr._request_event(spec, "forward_backward", seq_id, ref, 0, "ready")
                tip = store.append(spec.run_id, jr._new([event]), tip)[-1].seq
            waits.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(s,)) for s in specs]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    groups = journal._commits.groups
    journal.close()
    store.close()
    return {
        "rps": models * requests / wall,
        "median_wait_ms": statistics.median(waits) * 1e3,
        "groups": groups - models,  # less the model creations
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=16)
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--db-url", default=None)
    args = p.parse_args()
    results: dict[str, list[dict[str, Any]]] = {"alone": [], "group": []}
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        for _ in range(args.repeats):
            for mode in ("alone", "group"):
                r = run(mode, Path(tmp), args.models, args.requests, args.db_url)
                results[mode].append(r)
                print(mode, {k: round(v, 1) for k, v in r.items()}, flush=True)
    for mode, rs in results.items():
        rps = statistics.median(r["rps"] for r in rs)
        wait = statistics.median(r["median_wait_ms"] for r in rs)
        print(f"{mode}: {rps:.0f} requests/s, median wait {wait:.1f} ms (median of {len(rs)} runs)")
    ratio = statistics.median(r["rps"] for r in results["group"]) / statistics.median(
        r["rps"] for r in results["alone"]
    )
    print(f"group commit / one by one, requests/s: {ratio:.2f}")


if __name__ == "__main__":
    main()
