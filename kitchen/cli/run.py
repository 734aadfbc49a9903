"""``kitchen run`` and ``kitchen resume``."""

from __future__ import annotations

import argparse

from kitchen.errors import ConfigError, NotFound


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
    p.add_argument("--run-id", help="run id (default: RECIPE-DATE-TIME-XXXX)")
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


def _run(args: argparse.Namespace) -> int:
    from kitchen.cli.progress import CliReporter
    from kitchen.engine import faults, launch
    from kitchen.store import check_db_url, open_store

    # What needs no model is checked before launch.prepare imports the training stack, so a
    # mistyped run id or database URL is refused at once.
    if args.run_id is not None:
        launch.check_run_id(args.run_id)
    check_db_url()
    prepared = launch.prepare(args.recipe, args.overrides, args.config_file)
    store = open_store(hook=faults.point)
    run_id = args.run_id or launch.new_run_id(prepared.recipe.name)
    reporter = CliReporter(run_id, str(prepared.home))
    return launch.start(prepared, store, run_id, reporter, trace_console=args.trace == "console")


SERVED_HINT = (
    "run {run_id} is a model served by `kitchen serve`, which owns it: start `kitchen serve` "
    "and it rebuilds the model"
)


def _resume(args: argparse.Namespace) -> int:
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
    )
