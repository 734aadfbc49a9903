"""``kitchen cancel RUN_ID``: stop a run for good.

Two cases, decided by the lease. A live worker holds the run: only it may append to the run,
so we leave a cancel request that it honours at its next stage boundary (it records
``RunCancelled`` itself, after the stage in flight has finished cleanly). Nobody holds it
(created, interrupted, crashed): we append ``RunCancelled`` ourselves, naming the seq we folded,
so a worker that starts in between makes our append conflict instead of being overruled.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cancel",
        help="cancel a run (a running one stops at its next stage boundary)",
        description="Cancel a run. A run a worker is driving stops at its next stage "
        "boundary; a created, interrupted or crashed run is cancelled at once. Cancelled "
        "is terminal: the run cannot be resumed afterwards.",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.set_defaults(func=_cancel)


def _cancel(args: argparse.Namespace) -> int:
    from kitchen.cli._common import fold_run, open_store
    from kitchen.engine import events as ev
    from kitchen.errors import ConcurrencyConflict, ConfigError
    from kitchen.log_records import NewEvent

    store = open_store()
    run_id = args.run_id
    state = fold_run(store, run_id)
    if state.terminal:
        raise ConfigError(f"run {run_id} is already {state.status}; there is nothing to cancel")
    lease = store.get_lease(run_id)
    if lease is not None and lease.is_live():
        store.request_cancel(run_id)
        print(
            f"cancel requested: the runner of {run_id} (pid {lease.pid} on {lease.host}) will "
            "stop at a stage boundary within about 5 seconds"
        )
        return 0
    event = ev.RunCancelled(reason="cancelled by user", step=state.step)
    try:
        store.append(
            run_id,
            [NewEvent(event.type_name(), event.payload(), event.schema_version)],
            expected_seq=state.last_seq,
        )
    except ConcurrencyConflict:
        raise ConcurrencyConflict(
            f"run {run_id} changed while it was being cancelled (a worker appended to it); "
            f"check `kitchen show {run_id}` and cancel again"
        ) from None
    shown = "crashed" if state.status == "running" else state.status
    print(f"run {run_id} cancelled (it was {shown} at step {state.step})")
    return 0
