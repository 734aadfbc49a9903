"""``kitchen track RUN --to mlflow|tensorboard|wandb``: send a run's metrics to a tracker from
its log."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kitchen.store import EventStore


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "track",
        help="back-fill a tracker (MLflow, TensorBoard, W&B) with a run's metrics, from its log",
        description="Send every training and held-out metric of a run's effective history that "
        "the tracker does not hold yet, keyed by optimizer step, as `loggers=…` would have "
        "during the run: for a finished run, an old one, or one whose tracker missed points. "
        "Points already there are not sent again. For a run that ended, MLflow and W&B also "
        "get its artifacts (final adapter, config, HTML report) and its status. The tracker "
        "is configured as its users configure it: MLFLOW_TRACKING_URI (MLFLOW_EXPERIMENT_NAME); "
        "WANDB_PROJECT, WANDB_MODE, WANDB_DIR (docs/trackers.md).",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument(
        "--to", required=True, choices=["mlflow", "tensorboard", "wandb"], help="the tracker"
    )
    p.set_defaults(func=_track)


def _track(args: argparse.Namespace) -> int:
    from kitchen.cli._common import fold_run, kitchen_home, open_store
    from kitchen.engine import trackers

    trackers.check_installed([args.to])
    store = open_store()
    state = fold_run(store, args.run_id)  # NotFound in one line for an unknown run
    run_dir = kitchen_home() / (state.run_dir or state.run_id)
    with tempfile.TemporaryDirectory() as scratch:
        extra: dict[str, Path] = {}
        if state.terminal and args.to != "tensorboard":
            extra["report.html"] = _report(store, state.run_id, Path(scratch) / "report.html")
        written, total, where = trackers.backfill(store, args.run_id, run_dir, args.to, extra)
    print(
        f"{args.to}: wrote {written} of the run's {total} points to {where} "
        f"({total - written} were there already)",
        file=sys.stderr,
    )
    return 0


def install_report_writer() -> None:
    """Runs started here hand their HTML report to MLflow and W&B when they end."""
    from kitchen.engine import trackers

    trackers.report_writer = _report  # type: ignore[assignment]


def _report(store: EventStore, run_id: str, out: Path) -> Path:
    """The run's HTML report (`kitchen report`'s page), written to ``out``."""
    from kitchen.cli._common import displayed_status, load_state
    from kitchen.cli.report import render, verification

    state, rows = load_state(store, run_id)
    ok, verdict = verification(store, state, rows)
    out.write_text(render(state, displayed_status(store, state), ok, verdict), encoding="utf-8")
    return out
