"""The ``kitchen`` command line.

Thin on purpose: argv → config → engine. Each sub-command lives in its own module of this
package and imports its heavy dependencies inside the command, so ``kitchen --help``,
``kitchen runs`` and ``kitchen replay`` never load torch.

Conventions: the run id goes to stdout first; progress and logs go to stderr. Exit codes:
0 done, 1 the run failed, 2 usage/config/not found, 3 conflict, 71 out of memory (resumable
with other operating settings), 75 a fault outside the run
(disk full, database or service unreachable: resumable), 130 interrupted. Errors the
user can cause are one line (``kitchen: error: …``), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from kitchen._version import __version__
from kitchen.errors import KitchenError

# Sub-command modules, in the order --help lists them. Each defines
# ``register(subparsers) -> None`` that adds its parser(s) with ``set_defaults(func=...)``.
_COMMAND_MODULES = (
    "kitchen.cli.run",
    "kitchen.cli.fork",
    "kitchen.cli.recipes",
    "kitchen.cli.runs",
    "kitchen.cli.show",
    "kitchen.cli.replay",
    "kitchen.cli.cancel",
    "kitchen.cli.plot",
    "kitchen.cli.diff",
    "kitchen.cli.report",
    "kitchen.cli.watch",
    "kitchen.cli.export",
    "kitchen.cli.track",
    "kitchen.cli.verify",
    "kitchen.cli.sample",
    "kitchen.cli.recover",
    "kitchen.cli.db",
    "kitchen.cli.serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kitchen",
        description=(
            "Run LLM post-training as event-sourced state machines: every stage is an event in "
            "SQLite or Postgres, so runs can be resumed, audited and replayed."
        ),
        epilog=(
            "Environment: KITCHEN_HOME (default ./kitchen-runs) holds kitchen.db and one folder "
            "per run; KITCHEN_DB_URL overrides the database (any SQLAlchemy URL); OTEL_* "
            "variables configure OpenTelemetry exporters."
        ),
    )
    parser.add_argument("--version", action="version", version=f"kitchen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def fail(message: str, code: int = 2) -> int:
    """Print the error, one ``kitchen: error:`` line per problem, and return the exit code."""
    for line in message.splitlines() or [message]:
        print(f"kitchen: error: {line}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except KitchenError as exc:
        return fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug, not the user's doing: still one line unless asked
        from kitchen.engine.io_faults import storage_fault

        fault = storage_fault(exc, then="try again")  # a full or read-only disk is not a bug
        if fault is not None:
            return fail(str(fault), fault.exit_code)
        if _debug():
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        return fail(
            f"unexpected {type(exc).__name__}: {first} (set KITCHEN_DEBUG=1 for the traceback)", 1
        )


def _debug() -> bool:
    from kitchen.settings import current

    try:
        return current().debug
    except KitchenError:
        return False


def entrypoint() -> None:  # pragma: no cover - console script
    # A W&B service inherited from the process that started this one (wandb puts its address
    # in WANDB_SERVICE, which children inherit) outlives an attempt killed here and keeps its
    # run id open: the next attempt's run is then refused by that service ("run ID is in use")
    # and writes nothing. A kitchen process starts its own service, which dies with it.
    os.environ.pop("WANDB_SERVICE", None)
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entrypoint()
