"""Snapshots of the folded state: resume and replay fold only the events after the newest one.

A snapshot is ``RunState`` as JSON text at one seq of its run, stored beside the log
(``EventStore.write_snapshot``). It is a cache of the fold and never the truth:

- **sealed**: the store keeps the hash of the run's event at the snapshot's seq and a sha256
  of the whole snapshot; one that fails either check is skipped by ``read_snapshot``;
- **versioned**: ``fold_version()`` is a hash of the source of the modules that decide what
  the fold computes (the event records and their upcasters, the fold, this codec), so any
  change to them makes every older snapshot invisible; the next one written replaces them;
- **checked on audit**: ``kitchen replay --verify`` folds the whole log and compares every
  snapshot it would use with the fold at that seq.

JSON, not pickle: the database may be shared, and reading a snapshot must never run code.
Decoding is by hand, field by field. The per-step maps, which are most of a long run's state,
are written as column tables (the metric names once, then one list of values per metric),
which makes a snapshot about a third the size of the plain JSON of the state and decodes it
two to three times as fast. The cyclic garbage collector is paused while a snapshot is
encoded or decoded and a state folded from one (a million-event run's state is millions of
objects, which it would otherwise walk several times over).

When runs write them (``Policy``): after the commit that brings the events since the newest
snapshot to ``every`` (``KITCHEN_SNAPSHOT_EVERY``, default 10,000), and after the commit that
ends an attempt once a tenth of that has come (so a finished or stopped run replays from its
end). A checkpoint does not force one: resume folds to the log's end whatever it resumes from,
and on a long run a snapshot per checkpoint would encode a large state far more often than
it saves folding. The runner writes its in-memory state (``UnitOfWork``), which is the fold of
its committed events.
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from importlib import import_module
from itertools import chain, repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitchen.engine import events as ev
from kitchen.engine.state import (
    ActivityRecord,
    ArtifactRecord,
    Attempt,
    Checkpoint,
    Mismatch,
    Recorded,
    RunState,
    fold,
)
from kitchen.errors import NotFound
from kitchen.settings import DEFAULT_SNAPSHOT_EVERY

if TYPE_CHECKING:
    from kitchen.ports import EventLog
    from kitchen.store import StoredEvent

FORMAT = 1
DEFAULT_EVERY = DEFAULT_SNAPSHOT_EVERY
KEEP = 2  # snapshots kept per run: the newest, and the one before it
EVERY_ENV = "KITCHEN_SNAPSHOT_EVERY"

# The modules whose code decides what a log folds to: their source is the fold's version.
FOLD_MODULES = ("kitchen.engine.events", "kitchen.engine.state", "kitchen.engine.snapshots")

# Events that end an attempt: after their commit a tenth of ``every`` suffices for a snapshot.
MILESTONES = (
    ev.RunCompleted,
    ev.RunFailed,
    ev.RunCancelled,
    ev.AttemptInterrupted,
)


@cache
def fold_version() -> str:
    """sha256 of the source of ``FOLD_MODULES``: changes whenever the fold's code does."""
    digest = hashlib.sha256(f"kitchen-fold/{FORMAT}\n".encode())
    for name in FOLD_MODULES:
        module = sys.modules.get(name) or import_module(name)
        path = getattr(module, "__file__", None)
        digest.update(f"{name}\n".encode())
        digest.update(Path(path).read_bytes() if path else name.encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- the codec


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


_ATTEMPT = tuple(f.name for f in fields(Attempt))
_CHECKPOINT = tuple(f.name for f in fields(Checkpoint))
_ARTIFACT = tuple(f.name for f in fields(ArtifactRecord))
_MISMATCH = tuple(f.name for f in fields(Mismatch))
_ACTIVITY = tuple(f.name for f in fields(ActivityRecord))
# Fields written as they are (JSON values already: str, int, None, dict of JSON values).
_PLAIN = (
    "run_id",
    "last_seq",
    "recipe",
    "workflow",
    "config",
    "config_hash",
    "seed",
    "versions",
    "data_fingerprint",
    "run_dir",
    "blob_store",
    "status",
    "machine_state",
    "step",
    "epoch",
    "stage",
    "total_steps",
    "final_metrics",
    "adapter_uri",
    "cancel_reason",
)
_CODED = (
    "lineage",
    "fork",
    "created_at",
    "updated_at",
    "attempts",
    "step_metrics",
    "step_metric_seqs",
    "superseded_metrics",
    "eval_metrics",
    "checkpoints",
    "superseded",
    "optim_steps",
    "artifacts",
    "mismatches",
    "activities",
    "error",
    "fault",
)
assert set(_PLAIN) | set(_CODED) == {f.name for f in fields(RunState)}, (
    "a RunState field has no codec"
)

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: building or walking a state of millions of objects
    would otherwise trigger full collections that walk them all, again and again."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _table(by_step: Mapping[int, Mapping[str, Any]]) -> list[list[Any]]:
    """``{step: {name: value}}`` as column tables ``[[names, steps, columns], ...]``, one per
    set of metric names (usually one): ``columns[j][i]`` is metric ``names[j]`` at
    ``steps[i]``. Decoding them builds the dicts without a Python loop per step."""
    groups: dict[tuple[str, ...], tuple[list[int], list[list[Any]]]] = {}
    for step, metrics in by_step.items():
        names = tuple(metrics)
        group = groups.get(names)
        if group is None:
            group = groups[names] = ([], [[] for _ in names])
        group[0].append(step)
        for column, value in zip(group[1], metrics.values(), strict=True):
            column.append(value)
    return [[list(names), steps, columns] for names, (steps, columns) in groups.items()]


def _untable(tables: Sequence[Sequence[Any]]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for names, steps, columns in tables:
        if len(columns) != len(names) or any(len(c) != len(steps) for c in columns):
            raise SnapshotUnreadable("a metrics table whose columns do not match")
        if not names:  # steps that logged an empty map
            out.update((step, {}) for step in steps)
            continue
        rows = zip(*columns, strict=True)
        out.update(zip(steps, map(dict, map(zip, repeat(names), rows)), strict=True))
    return out


def _ranges(ints: Sequence[int]) -> list[list[int]]:
    """Ascending runs of consecutive ints as ``[start, stop)`` pairs: a run's optimizer steps
    are 0, 1, 2 … with a gap at most where a resume went back."""
    out: list[list[int]] = []
    for x in ints:
        if out and out[-1][1] == x:
            out[-1][1] = x + 1
        else:
            out.append([x, x + 1])
    return out


def _unranges(pairs: Sequence[Sequence[int]]) -> tuple[int, ...]:
    return tuple(chain.from_iterable(range(start, stop) for start, stop in pairs))


def encode(state: RunState) -> str:
    """The state as JSON text. Int-keyed maps become tables or pairs (JSON keys are strings)."""
    with _no_gc():
        return _ENCODER.encode(_encodable(state))


def _encodable(state: RunState) -> dict[str, Any]:
    out: dict[str, Any] = {"format": FORMAT}
    for name in _PLAIN:
        out[name] = getattr(state, name)
    out["lineage"] = [ref.model_dump(mode="json") for ref in state.lineage]
    out["fork"] = None if state.fork is None else state.fork.model_dump(mode="json")
    out["created_at"] = _when(state.created_at)
    out["updated_at"] = _when(state.updated_at)
    out["attempts"] = [
        [_when(a.started_at) if k == "started_at" else getattr(a, k) for k in _ATTEMPT]
        for a in state.attempts
    ]
    out["step_metrics"] = _table(state.step_metrics)
    seqs = state.step_metric_seqs
    out["step_metric_seqs"] = [list(seqs), list(seqs.values())]
    out["superseded_metrics"] = [[k, seq, m] for k, (seq, m) in state.superseded_metrics.items()]
    out["eval_metrics"] = _table(state.eval_metrics)
    out["checkpoints"] = [[getattr(c, k) for k in _CHECKPOINT] for c in state.checkpoints]
    out["superseded"] = state.superseded
    out["optim_steps"] = _ranges(state.optim_steps)
    out["artifacts"] = [[getattr(a, k) for k in _ARTIFACT] for a in state.artifacts]
    out["mismatches"] = [[getattr(m, k) for k in _MISMATCH] for m in state.mismatches]
    out["activities"] = [[getattr(a, k) for k in _ACTIVITY] for a in state.activities.values()]
    out["error"] = state.error
    out["fault"] = state.fault
    return out


class SnapshotUnreadable(ValueError):
    """A snapshot that verified but does not decode: ignored like a damaged one."""


def decode(text: str) -> RunState:
    """The state a snapshot holds; SnapshotUnreadable if it is not one this code wrote."""
    with _no_gc():
        return _decode(text)


def _decode(text: str) -> RunState:
    try:
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise SnapshotUnreadable(f"not a format {FORMAT} snapshot")
        values: dict[str, Any] = {name: d[name] for name in _PLAIN}
        values["lineage"] = tuple(ev.LineageRef.model_validate(x) for x in d["lineage"])
        fork = d.get("fork")  # absent from snapshots written before forks existed
        values["fork"] = None if fork is None else ev.ForkPoint.model_validate(fork)
        values["created_at"] = _at(d["created_at"])
        values["updated_at"] = _at(d["updated_at"])
        attempts = []
        for row in d["attempts"]:
            a = dict(zip(_ATTEMPT, row, strict=True))
            a["started_at"] = _at(a["started_at"])
            attempts.append(Attempt(**a))
        values["attempts"] = tuple(attempts)
        values["step_metrics"] = _untable(d["step_metrics"])
        steps, seqs = d["step_metric_seqs"]
        values["step_metric_seqs"] = dict(zip(steps, seqs, strict=True))
        values["superseded_metrics"] = {k: (seq, m) for k, seq, m in d["superseded_metrics"]}
        values["eval_metrics"] = _untable(d["eval_metrics"])
        values["checkpoints"] = tuple(Checkpoint(*row) for row in d["checkpoints"])
        values["superseded"] = tuple((lo, hi) for lo, hi in d["superseded"])
        values["optim_steps"] = _unranges(d["optim_steps"])
        values["artifacts"] = tuple(ArtifactRecord(*row) for row in d["artifacts"])
        values["mismatches"] = tuple(Mismatch(*row) for row in d["mismatches"])
        activities = (ActivityRecord(*row) for row in d.get("activities", ()))
        values["activities"] = {a.key: a for a in activities}
        values["error"] = None if d["error"] is None else tuple(d["error"])
        values["fault"] = None if d["fault"] is None else tuple(d["fault"])
        return RunState(**values)
    except SnapshotUnreadable:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # JSON errors: ValueError
        raise SnapshotUnreadable(f"{type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------- reading


def recorded(rows: Iterable[StoredEvent]) -> list[Recorded]:
    """Decode stored rows (upcasting old schema versions) into what the fold takes."""
    decode_event = ev.decode
    return [
        Recorded(r.seq, r.recorded_at, decode_event(r.type, r.schema_version, r.payload))
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Loaded:
    """A run's state, folded from its newest usable snapshot (``from_seq``, 0 for none) and
    the events after it (``rows``, decoded as ``records``)."""

    state: RunState
    from_seq: int
    rows: list[StoredEvent]
    records: list[Recorded]


def usable(store: EventLog, run_id: str, upto_seq: int | None = None) -> RunState | None:
    """The newest snapshot's state at or before ``upto_seq`` that verifies and decodes."""
    version = fold_version()
    while True:
        snap = store.read_snapshot(run_id, version, upto_seq)
        if snap is None:
            return None
        try:
            state = decode(snap.state)
        except SnapshotUnreadable:
            state = None
        if state is not None and state.run_id == run_id and state.last_seq == snap.seq:
            return state
        if snap.seq <= 1:
            return None
        upto_seq = snap.seq - 1  # try an older one


def load(store: EventLog, run_id: str, upto_seq: int | None = None) -> Loaded:
    """The run's state at ``upto_seq`` (its end if None): snapshot + tail; NotFound if the run
    has no events."""
    with _no_gc():
        state = usable(store, run_id, upto_seq)
        start = 0 if state is None else state.last_seq
        rows = store.read(run_id, after_seq=start, upto_seq=upto_seq)
        if state is None and not rows:
            raise NotFound(f"no run {run_id!r} in {store.url_for_display}; see `kitchen runs`")
        records = recorded(rows)
        return Loaded(fold(run_id, records, state), start, rows, records)


def compare(store: EventLog, run_id: str, records: Sequence[Recorded]) -> list[tuple[int, bool]]:
    """(seq, equal) for every usable snapshot: its state against the fold of ``records`` (the
    run's log from seq 1, in order) up to that seq. Oldest first."""
    found: list[RunState] = []
    upto: int | None = None
    while (state := usable(store, run_id, upto)) is not None:
        found.append(state)
        if state.last_seq <= 1:
            break
        upto = state.last_seq - 1
    out = []
    folded = RunState(run_id=run_id)
    done = 0
    for snap in reversed(found):
        folded = fold(run_id, records[done : snap.last_seq], folded)
        done = snap.last_seq
        out.append((snap.last_seq, folded == snap))
    return out


# --------------------------------------------------------------------------- writing


def every_from_env() -> int:
    """``KITCHEN_SNAPSHOT_EVERY`` (events between snapshots; 0 turns them off), or the default."""
    from kitchen.settings import current

    return current().snapshot_every


@dataclass(frozen=True, slots=True)
class Policy:
    """When a writer takes a snapshot: ``every`` events after the newest one (0: never), or at
    the end of an attempt once ``every // 10`` events have come."""

    every: int = DEFAULT_EVERY

    def due(self, since: int, milestone: bool) -> bool:
        if self.every <= 0 or since <= 0:
            return False
        return since >= self.every or (milestone and since >= max(self.every // 10, 1))


def save(store: EventLog, state: RunState) -> None:
    """Write ``state`` as the run's snapshot at ``state.last_seq`` (keeping the newest KEEP)."""
    store.write_snapshot(state.run_id, state.last_seq, fold_version(), encode(state), keep=KEEP)
