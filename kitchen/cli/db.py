"""``kitchen db upgrade|current``: the database schema (Alembic)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("db", help="create or upgrade the database schema; show its revision")
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = dsub.add_parser("upgrade", help="upgrade the database to the newest schema revision")
    up.set_defaults(func=_upgrade)
    cur = dsub.add_parser("current", help="print the database's schema revision")
    cur.set_defaults(func=_current)


def _upgrade(args: argparse.Namespace) -> int:
    raise NotImplementedError


def _current(args: argparse.Namespace) -> int:
    raise NotImplementedError
