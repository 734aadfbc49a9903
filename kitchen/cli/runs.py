"""``kitchen runs``: every run in the database, from the ``runs`` projection.

The projection is a cache of the fold kept in step with the log, so listing a thousand runs
reads a thousand rows, not their events. ``crashed`` is derived from the lease table (see
``displayed_status``); the projection itself only ever says ``running``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

# kitchen.engine.state.STATUSES, repeated so that `kitchen --help` need not import pydantic (a test
# pins the two together).
STATUSES = ("created", "running", "interrupted", "crashed", "completed", "failed", "cancelled")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "runs",
        help="list runs: id, recipe, status, step, attempts, last update",
        description="List the runs in the database, oldest first. A run whose worker died "
        "shows as crashed (resume it with `kitchen resume RUN_ID`).",
    )
    p.add_argument("--status", choices=STATUSES, help="only runs with this status")
    p.add_argument("--recipe", metavar="R", help="only runs of this recipe")
    p.add_argument("--json", action="store_true", help="print a JSON list of objects")
    p.add_argument(
        "--tree",
        action="store_true",
        help="show families of runs: each fork under the run it was forked from",
    )
    p.set_defaults(func=_runs)


def _runs(args: argparse.Namespace) -> int:
    from kitchen.cli._common import displayed_status, open_store

    store = open_store()
    # crashed and running are both "running" in the projection; the lease tells them apart.
    query = "running" if args.status in ("crashed", "running") else args.status
    listed = []
    for row in store.list_runs(status=query, recipe=args.recipe):
        status = displayed_status(store, row)
        if args.status is None or status == args.status:
            listed.append((row, status, 0))
    if args.tree:
        listed = _as_tree(listed)
    if args.json:
        print(json.dumps([_as_json(row, status) for row, status, _ in listed], indent=2))
    else:
        _print_table(listed)
    return 0


def _as_tree(listed: list[tuple[Any, str, int]]) -> list[tuple[Any, str, int]]:
    """The runs in families: each run followed by its forks (oldest first), depth-first; a
    fork whose parent is not listed heads a family of its own."""
    shown = {row.run_id for row, _, _ in listed}
    children: dict[str | None, list[tuple[Any, str, int]]] = {}
    for row, status, _ in listed:
        parent = row.parent if row.parent in shown else None
        children.setdefault(parent, []).append((row, status, 0))
    out: list[tuple[Any, str, int]] = []

    def walk(parent: str | None, depth: int) -> None:
        for row, status, _ in children.get(parent, []):
            out.append((row, status, depth))
            walk(row.run_id, depth + 1)

    walk(None, 0)
    return out


def _as_json(row: Any, status: str) -> dict[str, Any]:
    return {
        "run_id": row.run_id,
        "recipe": row.recipe,
        "status": status,
        "step": row.step,
        "attempts": row.attempts,
        "parent": row.parent,
        "last_seq": row.last_seq,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _print_table(listed: list[tuple[Any, str, int]]) -> None:
    import sys

    from kitchen.cli._common import fmt_time, table

    if not listed:
        print("no runs", file=sys.stderr)
        return
    rows = [
        [
            ("   " * (depth - 1) + "└─ " if depth else "") + row.run_id,
            row.recipe or "-",
            status,
            "-" if row.step is None else str(row.step),
            str(row.attempts),
            fmt_time(row.updated_at),
        ]
        for row, status, depth in listed
    ]
    print(table(["RUN ID", "RECIPE", "STATUS", "STEP", "ATTEMPTS", "UPDATED (UTC)"], rows))
