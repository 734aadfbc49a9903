"""``kitchen track RUN --to tensorboard``: send a run's metrics to a tracker from its log."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "track",
        help="back-fill a tracker (TensorBoard) with a run's metrics, from its log",
        description="Send every training and held-out metric of a run's effective history that "
        "the tracker does not hold yet, keyed by step, as `loggers=…` would have during the "
        "run: for a finished run, an old one, or one whose tracker missed points. Points "
        "already there are not sent again.",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--to", required=True, choices=["tensorboard"], help="the tracker")
    p.set_defaults(func=_track)


def _track(args: argparse.Namespace) -> int:
    from kitchen.cli._common import fold_run, kitchen_home, open_store
    from kitchen.engine import trackers

    trackers.check_installed([args.to])
    store = open_store()
    state = fold_run(store, args.run_id)  # NotFound in one line for an unknown run
    run_dir = kitchen_home() / (state.run_dir or state.run_id)
    written, total = trackers.backfill(store, args.run_id, run_dir, args.to)
    where = run_dir / trackers.TENSORBOARD_DIR
    print(
        f"{args.to}: wrote {written} of the run's {total} points to {where} "
        f"({total - written} were there already)",
        file=sys.stderr,
    )
    return 0
