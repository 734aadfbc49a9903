"""``kitchen export RUN_ID --out FILE``: a run's whole history as a file anyone can audit offline.

The format and why it suffices are in :mod:`kitchen.engine.audit`. The head hash goes to stdout on
its own (``HEAD=$(kitchen export …)``) because an auditor must get it by a separate channel
from the file: only then does ``kitchen verify FILE --head HASH`` catch a rewritten history.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's events (seq, hash, prev_hash) and blob hashes as JSON Lines",
        description="Write every event of a run, with its seq, hash and prev_hash, and a "
        "summary of its checkpoints and artifacts with their sha256, to a JSON Lines file "
        "that `kitchen verify` checks with no database. Prints the head hash on stdout.",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--out", required=True, metavar="FILE", help="the JSON Lines file to write")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from kitchen.cli._common import load_state, open_store, write_whole
    from kitchen.engine.audit import export_lines

    store = open_store()
    state, rows = load_state(store, args.run_id)
    out = Path(args.out)
    write_whole(out, (line + "\n" for line in export_lines(state, rows)))
    head = rows[-1].hash
    print(head)
    print(
        f"exported {len(rows)} events of run {state.run_id} to {out}; head hash {head} "
        f"(check with: kitchen verify {out} --head {head})",
        file=sys.stderr,
    )
    return 0
