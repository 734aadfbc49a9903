"""``kitchen verify FILE [--head HASH]``: check an export offline, with no database.

Exit 1 names the first bad seq (or what else is wrong: a truncated file, a summary that
disagrees, a head that does not match), so an auditor knows where to look.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kitchen.errors import IntegrityViolation, NotFound


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check an export's hash chain offline (no database)",
        description="Recompute every event's hash in a `kitchen export` file, check seqs "
        "and prev_hash links and the summary; with --head, also that the last hash is the "
        "head obtained separately, so that even a fully recomputed chain is caught.",
    )
    p.add_argument("file", metavar="FILE", help="a file written by `kitchen export`")
    p.add_argument(
        "--head",
        metavar="HASH",
        help="the run's head hash from `kitchen export`'s output or the live database",
    )
    p.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    from kitchen.engine.audit import verify_export

    path = Path(args.file)
    if not path.is_file():
        raise NotFound(f"no file {str(path)!r}")
    with path.open("rb") as fh:
        result = verify_export(fh, head=args.head)
    if not result.ok:
        where = f"seq {result.first_bad_seq}: " if result.first_bad_seq is not None else ""
        raise IntegrityViolation(f"{path}: {where}{result.reason}")
    against = (
        ", matches --head"
        if args.head
        else " (no --head: a fully recomputed chain "
        "would also pass; give the head hash to rule that out)"
    )
    print(f"verified: run {result.run_id}, {result.events} events, head {result.head}{against}")
    if result.model_card:
        print("verified: the model card is the recorded final adapter's README.md")
    return 0
