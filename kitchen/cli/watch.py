"""``kitchen watch [RUN_ID]``: follow the event log live, all runs or one, until Ctrl-C.

It polls ``read_all(after_position)``: the store guarantees that a reader which keeps the last
position it saw sees every event exactly once, in commit order, on SQLite and Postgres
(docs/store.md, "Tailing"), so a poll loop is all a live view needs — no triggers, no
LISTEN/NOTIFY, nothing that differs between the databases. It starts at the log's current end
(events already there are ``kitchen replay``'s job), or after ``--since POSITION``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kitchen.store import StoredEvent


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "watch",
        help="follow new events live (all runs, or one) until Ctrl-C",
        description="Print one line per new event of every run (or of RUN_ID) as it is "
        "committed, from the end of the log (or after --since), until Ctrl-C or SIGTERM (exit 0).",
    )
    p.add_argument("run_id", metavar="RUN_ID", nargs="?", help="only this run's events")
    p.add_argument(
        "--since",
        type=int,
        metavar="POSITION",
        help="start after this global position (0: the whole log) instead of at its end",
    )
    p.add_argument(
        "--interval", type=float, default=0.5, metavar="S", help="seconds between polls (0.5)"
    )
    p.set_defaults(func=_watch)


def line(row: StoredEvent) -> str:
    """``POSITION  TIME  RUN_ID  SEQ  TYPE  STAGE  STEP``: what the event is, from any workflow."""
    payload: dict[str, Any] = row.payload
    stage = payload.get("stage") or "-"
    step = payload.get("step")
    stamp = row.recorded_at.strftime("%H:%M:%S.%f")[:-3]
    return (
        f"{row.position:>7}  {stamp}  {row.run_id}  {row.seq:>5}  {row.type:<20} "
        f"{stage:<24} {'-' if step is None else step}"
    ).rstrip()


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both end a watch cleanly (exit 0).

    SIGINT is set explicitly because a shell starts background jobs with it ignored, and
    Python then leaves it ignored: ``kitchen watch &`` would not stop on ``kill -INT``.
    """
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def _watch(args: argparse.Namespace) -> int:
    from kitchen.cli._common import open_store
    from kitchen.log_records import check_run_id

    if args.run_id is not None:
        check_run_id(args.run_id)
    store = open_store()
    after = store.last_position() if args.since is None else max(args.since, 0)
    which = f"run {args.run_id}" if args.run_id else "all runs"
    print(
        f"watching {which} in {store.url_for_display} after position {after} (Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    _stop_on_signals()
    try:
        while True:
            rows = store.read_all(after_position=after, limit=1000)
            for row in rows:
                if args.run_id is None or row.run_id == args.run_id:
                    print(line(row), flush=True)
            if rows:
                after = rows[-1].position
                continue  # more may be waiting: read again before sleeping
            time.sleep(args.interval)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr, flush=True)
        return 0
    finally:
        store.close()
