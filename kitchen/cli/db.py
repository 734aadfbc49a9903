"""``kitchen db upgrade|current|drop-snapshots``: the database schema (Alembic), and its caches.

All honour KITCHEN_DB_URL and KITCHEN_HOME like every other command. ``upgrade`` is how a
shared Postgres database is moved to a new kitchen release: workers refuse to open an older
schema rather than migrate a database other people are using. ``drop-snapshots`` removes
snapshots of the folded state; nothing is lost, readers fold the whole log until the next
resume or run writes new ones.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="create or upgrade the database schema; show its revision")
    p.add_argument(
        "--db", metavar="URL", help="database URL (default: KITCHEN_DB_URL, then KITCHEN_HOME)"
    )
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = dsub.add_parser("upgrade", help="upgrade the database to the newest schema revision")
    up.set_defaults(func=_upgrade)
    cur = dsub.add_parser("current", help="print the database's schema revision")
    cur.set_defaults(func=_current)
    drop = dsub.add_parser(
        "drop-snapshots",
        help="remove the snapshots of a run's folded state (of every run without RUN_ID)",
    )
    drop.add_argument("run_id", metavar="RUN_ID", nargs="?")
    drop.set_defaults(func=_drop_snapshots)


def _upgrade(args: argparse.Namespace) -> int:
    from kitchen.store import upgrade

    print(upgrade(args.db))
    return 0


def _current(args: argparse.Namespace) -> int:
    """Print the database's revision on stdout (``none`` if never migrated), the head on stderr."""
    import sys

    from kitchen.store import current_revision, head_revision

    revision = current_revision(args.db)
    print(revision or "none")
    head = head_revision()
    note = "up to date" if revision == head else "run `kitchen db upgrade`"
    print(f"code head: {head} ({note})", file=sys.stderr)
    return 0


def _drop_snapshots(args: argparse.Namespace) -> int:
    """Remove snapshots; print how many. The log is untouched: they are only a cache."""
    import sys

    from kitchen.store import open_store

    with open_store(args.db) as store:
        removed = store.delete_snapshots(args.run_id)
    print(removed)
    whose = f"run {args.run_id}" if args.run_id else "every run"
    print(
        f"removed {removed} snapshot(s) of {whose}; the next resume writes new ones",
        file=sys.stderr,
    )
    return 0
