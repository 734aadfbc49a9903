"""``kitchen recover``: resume every crashed or interrupted run, one after another.

Each resume runs as its own ``kitchen resume`` process, so a run that crashes again cannot take
the recovery loop down with it. A run gets at most ``--max-attempts`` attempts in all, and waits
an exponentially growing backoff before each retry, so a run that always crashes stops being
retried instead of looping forever.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recover", help="resume crashed and interrupted runs, with a cap and backoff"
    )
    p.add_argument(
        "--max-attempts", type=int, default=5, help="attempts per run in all (default 5)"
    )
    p.add_argument(
        "--backoff", type=float, default=2.0, help="seconds before the first retry; doubles"
    )
    p.set_defaults(func=_recover)


def _resumable(store: Any, told: set[str]) -> list[tuple[str, int]]:
    from kitchen.cli._common import displayed_status

    out = []
    for row in store.list_runs():
        if displayed_status(store, row) not in ("crashed", "interrupted"):
            continue
        if row.recipe == "served":  # driven by requests, not by a runner
            if row.run_id not in told:
                print(f"kitchen: {row.run_id}: skipped, `kitchen serve` owns it", file=sys.stderr)
                told.add(row.run_id)
            continue
        out.append((row.run_id, int(row.attempts)))
    return out


def _recover(args: argparse.Namespace) -> int:
    from kitchen.store import open_store

    store = open_store()
    gave_up: set[str] = set()
    served: set[str] = set()
    tries: dict[str, int] = {}
    while True:
        todo = [(r, a) for r, a in _resumable(store, served) if r not in gave_up]
        if not todo:
            break
        for run_id, attempts in todo:
            if attempts >= args.max_attempts:
                print(
                    f"kitchen: {run_id}: {attempts} attempts, giving up "
                    f"(--max-attempts {args.max_attempts})",
                    file=sys.stderr,
                )
                gave_up.add(run_id)
                continue
            n = tries.get(run_id, 0)
            if n:
                time.sleep(args.backoff * 2 ** (n - 1))
            tries[run_id] = n + 1
            print(f"kitchen: resuming {run_id} (attempt {attempts + 1})", file=sys.stderr)
            code = subprocess.call([sys.executable, "-m", "kitchen.cli", "resume", run_id])
            if code not in (0, 1, 130):
                print(f"kitchen: {run_id}: resume exited {code}", file=sys.stderr)
    print(
        f"recovered; gave up on {len(gave_up)} run(s)" if gave_up else "nothing left to recover",
        file=sys.stderr,
    )
    return 1 if gave_up else 0
