"""``kitchen fork ID@STEP``: a new run from another run's exact state at an optimizer step."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fork",
        help="start a new run from another run's exact state at a step (what-if runs)",
        description="Start a new run whose starting state is run ID's at optimizer step STEP: "
        "weights, optimizer state, schedule position, data order and cursor, RNG states, and "
        "the run-wide artifacts its workflow carries (DPO's reference, a teacher's "
        "completions). From ID's checkpoint at STEP, or else by re-executing ID's steps from "
        "its newest earlier checkpoint on its recorded data, each compared with ID's log. "
        "key=value changes the keys the workflow lets a fork change (learning rate, schedule, "
        "max_steps, cadences, …) for the steps after STEP, and operating settings.",
    )
    p.add_argument(
        "target",
        metavar="ID@STEP",
        help="the run and step: ID@20, ID@step-000020, or ID (its newest checkpoint)",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="what changes at the fork")
    p.add_argument("--run-id", help="the fork's run id (default: ID-fork-STEP-XXXX)")
    p.add_argument(
        "--force",
        action="store_true",
        help="take a re-executed state whose steps differ from ID's log (recorded)",
    )
    p.add_argument("--trace", choices=["console"], help="print OpenTelemetry spans to stderr")
    p.set_defaults(func=_fork)


def _fork(args: argparse.Namespace) -> int:
    import secrets

    from kitchen.cli.progress import CliReporter
    from kitchen.engine import faults, launch
    from kitchen.engine import fork as kfork
    from kitchen.paths import kitchen_home
    from kitchen.store import check_db_url, open_store

    if args.run_id is not None:
        launch.check_run_id(args.run_id)
    run_id, step = kfork.parse_target(args.target)
    check_db_url()
    home = kitchen_home()
    store = open_store(hook=faults.point)
    fork_id = args.run_id or launch.check_run_id(
        f"{run_id[:40]}-fork-{step if step is not None else 'last'}-{secrets.token_hex(2)}"
    )
    plan = kfork.plan(store, args.target, args.overrides, fork_id, home)
    reporter = CliReporter(fork_id, str(home))
    return kfork.start(
        store, plan, fork_id, reporter, force=args.force, trace_console=args.trace == "console"
    )
