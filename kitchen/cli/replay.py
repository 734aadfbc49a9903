"""``kitchen replay RUN_ID``: the run's history as a timeline, then the state it folds to.

Replay only reads: it folds the stored events and prints them. It opens no span, runs no stage
and writes nothing, so it is safe on a run that a worker is driving right now.

Long runs: the state comes from the newest snapshot that verifies (``kitchen.engine.snapshots``) and
the events after it, and the timeline shows its last ``--tail`` events unless ``--all`` asks
for every one, so a run of a million events answers as fast as a short one. ``--at SEQ`` folds
from the nearest snapshot at or before SEQ. On a terminal the output goes through a pager.

``--verify`` adds the audit and trusts no snapshot: the hash chain of every event, the fold of
the whole log (every snapshot it could have used must agree with it), and every live
checkpoint's blob and every artifact of the effective history (the final adapter among them)
hashed again under KITCHEN_HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kitchen.engine import events as ev
    from kitchen.engine.state import Recorded, RunState
    from kitchen.store import EventStore, StoredEvent

SUPERSEDED = "[superseded]"
TAIL = 40  # timeline lines shown by default
PAGER = "less"  # when neither KITCHEN_PAGER nor PAGER is set; LESS defaults to FRX


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="print a run's event timeline and the state it folds to (no side effects)",
        description="Print one line per event (seq, time, type, stage, step, key metrics; "
        f"{SUPERSEDED} marks work redone after a resume), the last {TAIL} unless --all, then "
        "the folded state. Reads only; folds from the newest snapshot of the state. On a "
        "terminal the output goes through $KITCHEN_PAGER or $PAGER (default: less).",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument(
        "--at",
        type=int,
        metavar="SEQ",
        help="the state at SEQ (folded from the nearest snapshot at or before it); the "
        "timeline ends at SEQ",
    )
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--all", action="store_true", help="print every event of the timeline")
    shown.add_argument(
        "--tail",
        type=int,
        metavar="N",
        help=f"print the last N events of the timeline (default {TAIL}; with --json, every event)",
    )
    p.add_argument("--json", action="store_true", help="print {events: [...], state: {...}}")
    p.add_argument(
        "--verify",
        action="store_true",
        help="also check the hash chain, fold the whole log (snapshots must agree with it) and "
        "check the sha256 of every live checkpoint and the final adapter; exit 1 at the first "
        "bad item",
    )
    p.add_argument("--no-pager", action="store_true", help="never send the output to a pager")
    p.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    from kitchen.cli._common import displayed_status, not_found, open_store

    _first_shown(args, 0)  # a bad --tail is refused before anything is read
    store = open_store()
    run_id = args.run_id
    upto = None
    if args.at is not None:
        last = store.last_seq(run_id)
        if not last:
            raise not_found(store, run_id)
        upto = _check_at(args.at, run_id, last)
    verified = None
    if args.verify:
        state, shown, recs, verified = _audit(store, run_id, upto, args)
    else:
        state, shown, recs = _fold(store, run_id, upto, args)
    # At the end the state is the run's current one, so a dead worker shows as crashed; at an
    # earlier seq it is history, and the status is what the log said then.
    status = displayed_status(store, state) if args.at is None else state.status
    if args.json:
        text = json.dumps(_as_json(state, status, shown, recs, verified), indent=2)
        _emit(text + "\n", pager=not args.no_pager)
        return 0
    out = _hidden(shown) + timeline(state, shown, recs)
    out += ["", *_state_lines(state, status, at_end=args.at is None)]
    if verified is not None:
        out += ["", verified_line(verified)]
    _emit("\n".join(out) + "\n", pager=not args.no_pager)
    return 0


def _first_shown(args: argparse.Namespace, end: int) -> int:
    """The first seq of the timeline: 1 for every event, else the last ``--tail`` ones."""
    from kitchen.errors import ConfigError

    if args.all or (args.json and args.tail is None):
        return 1
    tail = TAIL if args.tail is None else args.tail
    if tail < 0:
        raise ConfigError(f"--tail {tail} is negative; give the number of events to show (>= 0)")
    return max(1, end - tail + 1)


def _fold(
    store: EventStore, run_id: str, upto: int | None, args: argparse.Namespace
) -> tuple[RunState, list[StoredEvent], list[Recorded]]:
    """The state from the newest usable snapshot + the events after it; the shown events."""
    from kitchen.engine import snapshots

    loaded = snapshots.load(store, run_id, upto)
    state = loaded.state
    first = _first_shown(args, state.last_seq)
    if first > loaded.from_seq:
        skip = first - loaded.from_seq - 1
        return state, loaded.rows[skip:], loaded.records[skip:]
    # the timeline reaches back before the snapshot: those events are read to be shown only
    before = store.read(run_id, after_seq=first - 1, upto_seq=loaded.from_seq)
    return state, before + loaded.rows, snapshots.recorded(before) + loaded.records


def _audit(
    store: EventStore, run_id: str, upto: int | None, args: argparse.Namespace
) -> tuple[RunState, list[StoredEvent], list[Recorded], dict[str, Any]]:
    """``--verify``: the chain, the fold of every event, the snapshots against it, the blobs."""
    from kitchen.cli._common import kitchen_home, not_found
    from kitchen.engine import snapshots
    from kitchen.engine.state import fold
    from kitchen.errors import IntegrityViolation

    rows = store.read(run_id)
    if not rows:
        raise not_found(store, run_id)
    # The chain is checked before anything is decoded, so that an altered row is reported as
    # damage at its seq rather than as a payload this kitchen cannot read.
    checked = verify_chain(store, run_id)
    decoded = snapshots.recorded(rows)
    end = len(rows) if upto is None else upto
    compared = snapshots.compare(store, run_id, decoded)
    for seq, same in compared:
        if not same:
            raise IntegrityViolation(
                f"the snapshot of run {run_id} at seq {seq} differs from the fold of its events; "
                f"remove the run's snapshots with `kitchen db drop-snapshots {run_id}`"
            )
    full = fold(run_id, decoded)
    state = full if upto is None else fold(run_id, decoded[:end])
    verified = verify_blobs(full, rows, kitchen_home(), checked)
    if compared:
        verified["snapshots"] = len(compared)
    first = _first_shown(args, end)
    return state, rows[first - 1 : end], decoded[first - 1 : end], verified


def _hidden(shown: list[StoredEvent]) -> list[str]:
    """A note above a timeline that starts after seq 1."""
    if not shown or shown[0].seq <= 1:
        return []
    n = shown[0].seq - 1
    what = f"{n} earlier event{'s' if n > 1 else ''} (seq 1 to {n})"
    return [f"... {what} not shown; --all shows every event"]


def _emit(text: str, *, pager: bool) -> None:
    """Print, through a pager when stdout is a terminal (``KITCHEN_PAGER``, ``PAGER``, less)."""
    if pager and sys.stdout.isatty():
        from kitchen.settings import current

        command = (current().pager or os.environ.get("PAGER", PAGER)).strip()
        if command and command != "cat" and _page(text, command):
            return
    sys.stdout.write(text)


def _page(text: str, command: str) -> bool:
    """Hand ``text`` to the pager; False if it cannot be started (then we print ourselves)."""
    import shlex
    import subprocess

    try:
        argv = shlex.split(command)
        env = {"LESS": "FRX", **os.environ}  # one screen or less: print it and quit
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, env=env)
    except (OSError, ValueError):
        return False
    try:
        assert proc.stdin is not None
        proc.stdin.write(text.encode("utf-8"))
        proc.stdin.close()
    except BrokenPipeError:  # the reader left the pager before the end
        pass
    while True:
        try:
            proc.wait()
            return True
        except KeyboardInterrupt:  # Ctrl-C belongs to the pager while it runs
            continue


def _check_at(at: int, run_id: str, last: int) -> int:
    from kitchen.errors import ConfigError

    if not 1 <= at <= last:
        raise ConfigError(
            f"--at {at} is outside run {run_id}, whose events are seq 1 to {last}; "
            f"pick a seq in that range"
        )
    return at


# --------------------------------------------------------------------------- timeline


def timeline(state: RunState, rows: list[StoredEvent], recs: list[Recorded]) -> list[str]:
    """A header, then one line per event; superseded as known at the end of this fold."""
    width = max(len(str(rows[-1].seq)) if rows else 1, 3)
    head = f"{'SEQ':>{width}}  {'TIME (UTC)':<23}  {'TYPE':<20} {'STAGE':<24} {'STEP':>5}  DETAILS"
    lines = [head]
    key = _key_metric(state)
    for row, rec in zip(rows, recs, strict=True):
        e = rec.event
        stage = getattr(e, "stage", None) or ""
        step = _step_of(e)
        text = (
            f"{row.seq:>{width}}  {_time_ms(row)}  {row.type:<20} {stage:<24} "
            f"{'' if step is None else step:>5}  {details(e, key)}"
        )
        if state.is_superseded(row.seq):
            text += f"  {SUPERSEDED}"
        lines.append(text.rstrip())
    return lines


def _time_ms(row: StoredEvent) -> str:
    """UTC to the millisecond (isoformat is several times faster than strftime here)."""
    when = row.recorded_at
    if when.utcoffset():
        when = when.astimezone(UTC)
    return when.isoformat(" ", "milliseconds")[:23]


def _step_of(e: ev.Event) -> int | None:
    step = getattr(e, "step", None)
    if step is None:
        step = getattr(e, "from_step", None)
    return step if isinstance(step, int) else None


def _key_metric(state: RunState) -> tuple[str, ...]:
    """The run's workflow's step metric: worth a place on a timeline line (the rest stay in
    ``--json`` and ``kitchen show``). None known when the workflow is not installed here."""
    from kitchen.errors import KitchenError
    from kitchen.workflows import get_workflow

    if state.workflow is None:
        return ()
    try:
        metric = get_workflow(state.workflow).step_metric
    except (KitchenError, ImportError, TypeError):
        return ()
    return (metric,) if metric else ()


def details(e: ev.Event, key_metrics: tuple[str, ...] = ()) -> str:
    """The few facts of an event a reader scans for; the full payload is in ``--json``."""
    from kitchen.cli._common import fmt_metrics, fmt_value
    from kitchen.engine import events as ev

    if isinstance(e, ev.StageCompleted):
        return _stage_outputs(e, key_metrics)
    if isinstance(e, ev.StageStarted):
        return f"{e.source} -> {e.dest}"
    if isinstance(e, ev.StageFailed | ev.RunFailed):
        return f"{e.error_type}: {e.message}"
    if isinstance(e, ev.RunCreated):
        return f"recipe={e.recipe} workflow={e.workflow} seed={e.seed}"
    if isinstance(e, ev.AttemptStarted):
        text = f"attempt={e.attempt} worker={e.worker}"
        return text + (f" resumed_from=seq {e.resumed_from}" if e.resumed_from else "")
    if isinstance(e, ev.RunResumed):
        ckpt = e.from_checkpoint_seq
        text = f"attempt={e.attempt} from={'start' if ckpt is None else f'seq {ckpt}'}"
        return text + f" state={e.machine_state}" + (" forced" if e.forced else "")
    if isinstance(e, ev.AttemptInterrupted):
        if e.fault is not None:
            return f"attempt={e.attempt} fault={e.fault}: {e.reason}"
        return f"attempt={e.attempt} signal={e.signal}"
    if isinstance(e, ev.RunCompleted):
        return fmt_metrics(e.metrics)
    if isinstance(e, ev.RunCancelled):
        return e.reason
    if isinstance(e, ev.CheckpointSaved):
        return f"{e.name} uri={e.uri} bytes={e.bytes}" + (" final" if e.final else "")
    if isinstance(e, ev.CheckpointInvalidated):
        return f"checkpoint seq {e.checkpoint_seq} uri={e.uri} ({e.reason})"
    if isinstance(e, ev.CheckpointDeleted):
        return f"checkpoint seq {e.checkpoint_seq} uri={e.uri}"
    if isinstance(e, ev.DeterminismMismatch):
        return (
            f"{e.metric}: logged {fmt_value(e.logged)} (seq {e.logged_seq}), "
            f"replayed {fmt_value(e.replayed)}"
        )
    return ""


def _stage_outputs(e: ev.StageCompleted, key_metrics: tuple[str, ...]) -> str:
    """Logged metrics (the key ones), held-out metrics, or else the outputs; then artifacts
    the outputs do not already name."""
    from kitchen.cli._common import fmt_metrics, fmt_value

    parts: list[str] = []
    if e.metrics:
        for key, metrics in e.metrics.items():
            shown = {k: metrics[k] for k in key_metrics if k in metrics}
            parts.append(f"step {key}: {fmt_metrics(shown)}".rstrip())
    elif e.eval_metrics:
        parts.append(fmt_metrics(e.eval_metrics))
    else:
        for key, value in sorted(e.outputs.items()):
            if isinstance(value, str | int | float | bool):
                shown_value = value[:12] if key == "sha256" and isinstance(value, str) else value
                parts.append(f"{key}={fmt_value(shown_value)}")
    for a in e.artifacts:
        if e.outputs.get("sha256") != a.sha256:
            parts.append(f"{a.kind} sha256={a.sha256[:12]} bytes={a.bytes}")
    parts.append(f"({e.duration_s:.3f}s)")
    return "  ".join(parts)


# --------------------------------------------------------------------------- state


def _state_lines(state: RunState, status: str, *, at_end: bool) -> list[str]:
    from kitchen.cli._common import kitchen_home
    from kitchen.cli.show import describe

    title = f"state at seq {state.last_seq}" + (" (the end):" if at_end else ":")
    body = describe(state, status, kitchen_home())
    return [title, *(f"  {line}" if line else "" for line in body)]


def _as_json(
    state: RunState,
    status: str,
    rows: list[StoredEvent],
    recs: list[Recorded],
    verified: dict[str, Any] | None,
) -> dict[str, Any]:
    from kitchen.cli._common import state_json

    events = [
        {
            "seq": row.seq,
            "recorded_at": row.recorded_at.isoformat(),
            "type": row.type,
            "schema_version": row.schema_version,
            "stage": getattr(rec.event, "stage", None),
            "step": _step_of(rec.event),
            "superseded": state.is_superseded(row.seq),
            "payload": row.payload,
            "hash": row.hash,
        }
        for row, rec in zip(rows, recs, strict=True)
    ]
    out: dict[str, Any] = {"events": events, "state": state_json(state, status)}
    if verified is not None:
        out["verified"] = verified
    return out


# --------------------------------------------------------------------------- verify


def verify_chain(store: EventStore, run_id: str) -> int:
    """Recompute the run's hash chain; IntegrityViolation (exit 1) at the first bad seq."""
    from kitchen.errors import IntegrityViolation

    result = store.verify(run_id)
    if not result.ok:
        reason = (result.reason or "").removeprefix(f"seq {result.first_bad_seq}: ")
        raise IntegrityViolation(f"hash chain broken at seq {result.first_bad_seq}: {reason}")
    return result.checked


def verify_blobs(
    state: RunState, rows: list[StoredEvent], home: Path, checked: int
) -> dict[str, Any]:
    """Each live local checkpoint's blob, then every local artifact of the effective history
    (the final adapter, reference log-probs, rollouts …), then every activity result held in a
    blob (``ActivityCompleted.blob``), hashed again under ``home``.

    Raises CheckpointCorrupt (exit 1) at the first bad one. Remote references are the remote
    service's to verify.
    """
    from kitchen.engine.registry import run_blob_store

    blobs = run_blob_store(state.config, state.blob_store, home)
    live = [c for c in state.live_checkpoints() if c.location == "local"]
    for c in live:
        _check_blob(blobs, f"checkpoint {c.name} (seq {c.seq})", c.uri, c.sha256, c.bytes)
    artifacts = [a for a in state.effective_artifacts() if a.location == "local"]
    for a in artifacts:
        label = "final adapter" if a.kind == "final_weights" else a.kind
        _check_blob(blobs, f"{label} (seq {a.seq})", a.uri, a.sha256, a.bytes)
    held = [a for a in state.activities.values() if a.blob_uri is not None]
    for x in held:
        assert x.blob_uri is not None and x.blob_sha256 is not None
        what = f"activity {x.key} (seq {x.seq})"
        _check_blob(blobs, what, x.blob_uri, x.blob_sha256, x.blob_bytes or 0)
    final = state.latest_artifact("final_weights") is not None and state.status == "completed"
    out: dict[str, Any] = {"events": checked, "checkpoints": len(live), "final_adapter": final}
    others = sum(a.kind != "final_weights" for a in artifacts)
    if others:
        out["artifacts"] = others
    if held:
        out["activity_blobs"] = len(held)
    return out


def _check_blob(blobs: Any, what: str, uri: str, sha256: str, size: int) -> None:
    from kitchen.errors import CheckpointCorrupt, ConfigError
    from kitchen.ports import BlobRef

    url = getattr(blobs, "url", None)
    place = url or str(blobs.root)
    try:
        there = blobs.exists(uri)
    except ConfigError:
        where = url or f"KITCHEN_HOME={blobs.root}"
        raise CheckpointCorrupt(f"{what}: uri {uri!r} is not a blob key under {where}") from None
    if not there:
        raise CheckpointCorrupt(f"{what}: blob {uri} is missing under {place}")
    if blobs.verify(BlobRef(uri, sha256, size)):
        return
    hash_path = getattr(blobs, "hash_path", None)
    if hash_path is None:  # a remote store: its marker or its bytes differ from the record
        raise CheckpointCorrupt(
            f"{what}: blob {uri} under {place} does not hash to the recorded sha256 "
            f"{sha256[:12]} ({size} bytes)"
        )
    found_sha, found_size = hash_path(blobs.root / uri)
    if found_sha != sha256:
        raise CheckpointCorrupt(
            f"{what}: sha256 mismatch (recorded {sha256[:12]}, found {found_sha[:12]})"
        )
    raise CheckpointCorrupt(f"{what}: size mismatch (recorded {size} bytes, found {found_size})")


def verified_line(verified: dict[str, Any]) -> str:
    line = f"verified: {verified['events']} events, {verified['checkpoints']} checkpoints"
    line += f", {verified['artifacts']} artifacts" if verified.get("artifacts") else ""
    line += ", final adapter" if verified["final_adapter"] else ""
    held = verified.get("activity_blobs")
    line += f", {held} activity results" if held else ""
    return line + (f", {verified['snapshots']} snapshots" if verified.get("snapshots") else "")
