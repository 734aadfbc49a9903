"""``kitchen export RUN_ID --out FILE``: a run's whole history as a file anyone can audit offline.

When the run's final adapter folder holds a model card, the summary line carries it with the
folder's file hashes, which ``kitchen verify`` ties to the recorded final adapter.

The format and why it suffices are in :mod:`kitchen.engine.audit`. The head hash goes to stdout on
its own (``HEAD=$(kitchen export …)``) because an auditor must get it by a separate channel
from the file: only then does ``kitchen verify FILE --head HASH`` catch a rewritten history.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kitchen.engine.state import RunState


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's events (seq, hash, prev_hash) and blob hashes as JSON Lines",
        description="Write every event of a run, with its seq, hash and prev_hash, and a "
        "summary of its checkpoints and artifacts with their sha256 (and the final adapter's "
        "model card, when it has one), to a JSON Lines file that `kitchen verify` checks "
        "with no database. Prints the head hash on stdout.",
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
    card = _card(state)
    write_whole(out, (line + "\n" for line in export_lines(state, rows, card)))
    head = rows[-1].hash
    print(head)
    print(
        f"exported {len(rows)} events of run {state.run_id} to {out}; head hash {head} "
        f"(check with: kitchen verify {out} --head {head})",
        file=sys.stderr,
    )
    return 0


def _card(state: RunState) -> dict[str, Any] | None:
    """The summary's ``model_card`` entry: the final adapter folder's card and file hashes,
    or None (a run with no final adapter, or one written before cards; one that cannot be
    read or no longer matches its record is said on stderr and left out)."""
    from kitchen.adapters._blob_common import MARKER
    from kitchen.adapters._localfs import hash_file
    from kitchen.cli._common import kitchen_home
    from kitchen.engine.audit import card_entry, card_problem
    from kitchen.engine.registry import run_blob_store
    from kitchen.errors import KitchenError
    from kitchen.paths import CARD_FILE

    final = state.latest_artifact("final_weights")
    if final is None or final.location != "local":
        return None
    try:
        blobs = run_blob_store(state.config, state.blob_store, kitchen_home())
        folder = Path(blobs.local_path(final.uri))
        if not (folder / CARD_FILE).is_file():
            return None
        found = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
        files = [(rel, *hash_file(p)) for rel, p in found.items() if rel != MARKER]
        entry = card_entry(final.uri, files, (folder / CARD_FILE).read_text(encoding="utf-8"))
    except (KitchenError, OSError, UnicodeDecodeError) as exc:
        print(f"kitchen export: the model card is left out: {exc}", file=sys.stderr)
        return None
    if card_problem(entry, state) is not None:
        print(
            f"kitchen export: the model card is left out: {final.uri} no longer matches its "
            f"recorded sha256; check with `kitchen replay {state.run_id} --verify`",
            file=sys.stderr,
        )
        return None
    return entry
