"""``kitchen db upgrade|current``: the database schema (Alembic).

Both honour KITCHEN_DB_URL and KITCHEN_HOME like every other command. ``upgrade`` is how a
shared Postgres database is moved to a new kitchen release: workers refuse to open an older
schema rather than migrate a database other people are using.
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
