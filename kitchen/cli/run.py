"""``kitchen run`` and ``kitchen resume``."""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from kitchen.errors import ConfigError, KitchenError, NotFound


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="start a new run of a recipe",
        description="Start a new run. key=value overrides beat --config FILE; every check that "
        "needs no training runs before the run is created.",
    )
    p.add_argument("recipe", help="recipe name (see `kitchen recipes`)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--config", dest="config_file", metavar="FILE", help="YAML or TOML config file")
    p.add_argument(
        "--run-id", help="run id (default: RECIPE-DATE-TIME-XXXX; required under torchrun)"
    )
    p.add_argument(
        "--if-exists",
        choices=["fail", "resume"],
        default=None,
        help="when the run id exists: fail (the default), or resume it: continue an "
        "interrupted or crashed run (waiting out a dead worker's lease), exit 0 for a "
        "completed one, 1 for a failed or cancelled one, refuse another recipe or config "
        "(exit 2). A restart by torchrun implies resume",
    )
    p.add_argument("--trace", choices=["console"], help="print OpenTelemetry spans to stderr")
    p.set_defaults(func=_run)

    r = sub.add_parser(
        "resume",
        help="continue a crashed or interrupted run from its newest valid checkpoint",
        description="Start the next attempt of a run: fold its events, verify the newest "
        "checkpoint (falling back to older ones), and continue exactly where it left off.",
    )
    r.add_argument("run_id")
    r.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="operating settings for this attempt (pipeline, torch_threads, …: recorded); other "
        "config changes need --force",
    )
    r.add_argument(
        "--force", action="store_true", help="accept a changed identity key, dataset or lineage"
    )
    r.add_argument("--trace", choices=["console"], help="print OpenTelemetry spans to stderr")
    r.set_defaults(func=_resume)


UNDER_TORCHRUN = "TORCHELASTIC_RUN_ID"  # set by torchrun for every worker it starts


@contextlib.contextmanager
def _processes() -> Iterator[Any]:
    """The other processes of the run when torchrun started several (None: this one alone);
    the group is left at the end."""
    from kitchen.adapters import torch_distributed

    collectives = torch_distributed.from_env()
    try:
        yield collectives
    finally:
        if collectives is not None:
            torch_distributed.leave()


def _in_group(collectives: Any, run: Callable[[], int]) -> int:
    """``run()``; when a peer was lost on the way, this process ends at once with its code
    (after printing its error), since a group with a peer gone cannot exit cleanly."""
    from kitchen.adapters import torch_distributed
    from kitchen.cli import fail

    try:
        code = run()
    except KitchenError as exc:
        if collectives is None or not torch_distributed.peer_lost():
            raise
        code = fail(str(exc), exc.exit_code)
    if collectives is not None and torch_distributed.peer_lost():
        torch_distributed.exit_now(code)
    return code


def _lead(collectives: Any, body: Callable[[Any], int]) -> int:
    """Rank 0 (or the only process): ``body(mirror)``; whatever ends it, the other processes
    are told the exit code, so none waits for a step that will not come."""
    from kitchen.engine.distributed import Mirror

    if collectives is None:
        return body(None)
    mirror = Mirror(collectives)
    code = 1
    try:
        code = body(mirror)
        return code
    except KitchenError as exc:
        code = exc.exit_code
        raise
    finally:
        mirror.end(code)


def _follow(collectives: Any) -> int:
    from kitchen.engine import launch

    with tempfile.TemporaryDirectory(prefix=f"kitchen-rank{collectives.rank}-") as scratch:
        from pathlib import Path

        return launch.follow(collectives, Path(scratch))


def _run(args: argparse.Namespace) -> int:
    from kitchen.engine import launch
    from kitchen.store import check_db_url

    # What needs no model is checked before launch.prepare imports the training stack, so a
    # mistyped run id or database URL is refused at once.
    if args.run_id is not None:
        launch.check_run_id(args.run_id)
    elif UNDER_TORCHRUN in os.environ:
        raise ConfigError(
            "under torchrun a run needs a name every process and every restart shares: pass "
            "--run-id ID (torchrun's own rendezvous ids cannot name a run)"
        )
    check_db_url()
    with _processes() as collectives:
        if collectives is not None and collectives.rank != 0:
            return _in_group(collectives, lambda: _follow(collectives))
        return _in_group(collectives, lambda: _lead(collectives, lambda m: _start(args, m)))


def _if_exists(args: argparse.Namespace) -> str:
    from kitchen.adapters.torch_distributed import restart_count

    if args.if_exists is None and restart_count() > 0:
        return "resume"  # torchrun restarted the group: carry on where the run is
    return args.if_exists or "fail"


def _start(args: argparse.Namespace, mirror: Any) -> int:
    from kitchen.cli.progress import CliReporter
    from kitchen.engine import faults, launch
    from kitchen.store import open_store

    prepared = launch.prepare(args.recipe, args.overrides, args.config_file)
    store = open_store(hook=faults.point)
    run_id = args.run_id or launch.new_run_id(prepared.recipe.name)
    if args.run_id is not None and store.run_exists(run_id) and _if_exists(args) == "resume":
        return _resume_existing(args, prepared, store, mirror)
    reporter = CliReporter(run_id, str(prepared.home))
    return launch.start(
        prepared,
        store,
        run_id,
        reporter,
        trace_console=args.trace == "console",
        mirror=mirror,
    )


def _wait_for_the_lease(store: Any, run_id: str) -> None:
    """A requeued job may start before the lease of the worker it replaces has expired (the
    node died, so the lease was never released): wait until it expires or is released, for
    at most the time-to-live it had, and then carry on (a holder that is still renewing it
    refuses the resume then: exit 3)."""
    import sys
    import time
    from datetime import UTC, datetime

    lease = store.get_lease(run_id)
    noted = False
    deadline: float | None = None  # at most the time-to-live the lease had when we looked
    while lease is not None and lease.is_live():
        left = (lease.expires_at - datetime.now(UTC)).total_seconds()
        if deadline is None:
            deadline = time.monotonic() + left
        left = min(left, deadline - time.monotonic())
        if left <= 0:
            break
        if not noted:
            print(
                f"kitchen: run {run_id} is leased to {lease.holder} on {lease.host} for "
                f"{left:.0f} s more; waiting for it to expire or be released",
                file=sys.stderr,
                flush=True,
            )
            noted = True
        time.sleep(min(2.0, max(left, 0.1)))
        lease = store.get_lease(run_id)


def _resume_existing(args: argparse.Namespace, prepared: Any, store: Any, mirror: Any) -> int:
    """``--if-exists resume``: the same run carries on; another one is refused."""
    import sys

    from kitchen.cli._common import fold_run
    from kitchen.cli.progress import CliReporter
    from kitchen.engine import launch

    run_id = args.run_id
    state = fold_run(store, run_id)
    if state.recipe != prepared.recipe.name or state.config_hash != prepared.config_hash:
        what = (
            f"recipe {state.recipe!r}"
            if state.recipe != prepared.recipe.name
            else "another config (identity keys)"
        )
        raise ConfigError(
            f"run {run_id!r} exists with {what}; this command would start a different run: "
            "give it another --run-id, or match the run's settings (`kitchen show "
            f"{run_id}`)"
        )
    print(run_id, flush=True)
    if state.status == "completed":
        print(f"kitchen: run {run_id} is already completed; nothing to do", file=sys.stderr)
        return 0
    if state.status in ("failed", "cancelled"):
        raise KitchenError(
            f"run {run_id!r} is {state.status}, which no resume undoes; start a new run with "
            "another --run-id"
        )
    _wait_for_the_lease(store, run_id)
    state = fold_run(store, run_id)
    reporter = CliReporter(run_id, str(prepared.home), print_id=False)
    return launch.resume(
        store,
        run_id,
        state,
        args.overrides,
        reporter,
        trace_console=args.trace == "console",
        mirror=mirror,
    )


SERVED_HINT = (
    "run {run_id} is a model served by `kitchen serve`, which owns it: start `kitchen serve` "
    "and it rebuilds the model"
)


def _resume(args: argparse.Namespace) -> int:
    with _processes() as collectives:
        if collectives is not None and collectives.rank != 0:
            return _in_group(collectives, lambda: _follow(collectives))
        return _in_group(collectives, lambda: _lead(collectives, lambda m: _resume_run(args, m)))


def _resume_run(args: argparse.Namespace, mirror: Any) -> int:
    from kitchen.cli._common import fold_run
    from kitchen.cli.progress import CliReporter
    from kitchen.engine import faults, launch
    from kitchen.paths import kitchen_home
    from kitchen.store import open_store

    store = open_store(hook=faults.point)
    state = fold_run(store, args.run_id)
    if state.recipe is None:
        raise NotFound(f"run {args.run_id!r} has no RunCreated event")
    if state.workflow == "served":
        raise ConfigError(SERVED_HINT.format(run_id=args.run_id))
    print(args.run_id, flush=True)
    reporter = CliReporter(args.run_id, str(kitchen_home()), print_id=False)
    return launch.resume(
        store,
        args.run_id,
        state,
        args.overrides,
        reporter,
        force=args.force,
        trace_console=args.trace == "console",
        mirror=mirror,
    )
