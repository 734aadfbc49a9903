"""RunState and the fold that rebuilds it from the run's events.

State is only ever ``fold(events)``: nothing else writes it. ``apply`` is pure — it returns a
new ``RunState`` and never mutates the one it was given (collections are copied when they
change), so folding one event at a time equals folding the batch, and ``kitchen replay --at``
can stop anywhere.

Speed: a handler returns only the fields an event changes, and ``fold`` writes them into one
private copy of the state that nobody else sees until it is returned; growing dicts (step
metrics) are merged into that copy in place, and growing tuples (optimizer steps) are lists
while the call runs, so one call folds N events in O(N) however long the run already is (the
tail after a snapshot of a million-event run costs what the tail's events cost). Building a
new 30-field ``RunState`` per event with ``dataclasses.replace`` cost about 13 µs an event;
this costs about 2 µs (``bench/fold.py``).

Superseded history: when a run resumes from a checkpoint, the stage events logged after that
checkpoint by earlier attempts stay in the log (it is an audit trail) but no longer describe the
run's effective history; ``RunResumed`` marks the seq range ``(checkpoint_seq, resume_seq)`` as
superseded. Their step metrics are kept apart (``superseded_metrics``) so re-executed steps can be
compared with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from operator import attrgetter
from types import MappingProxyType
from typing import Any

from kitchen.engine import events as ev

STATUSES = ("created", "running", "interrupted", "crashed", "completed", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
INITIAL_MACHINE_STATE = "start"


@dataclass(frozen=True, slots=True)
class Recorded:
    """An event with the log coordinates the fold needs."""

    seq: int
    recorded_at: datetime | None
    event: ev.Event


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int
    worker: str
    host: str
    pid: int
    started_seq: int
    started_at: datetime | None
    resumed_from: int | None
    trace_id: str | None
    span_id: str | None
    ended: str | None = None  # completed | failed | cancelled | interrupted | None (still open)
    operating: dict[str, Any] | None = None  # its operating settings (None: not on record)
    backend: dict[str, str] = field(default_factory=dict)  # device, dtype, torch_threads …


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    name: str
    step: int
    epoch: int
    uri: str
    sha256: str
    bytes: int
    machine_state: str
    cursor: dict[str, Any]
    final: bool
    status: str = "live"  # live | invalidated | deleted
    attempt: int = 0
    location: str = "local"  # local blob folder | remote reference (tinker://…)


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """An artifact on record, with the seq of the event that recorded it."""

    seq: int
    kind: str
    uri: str
    sha256: str
    bytes: int
    step: int | None
    location: str = "local"
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    """The newest record of an activity, by key: ``started`` (its start is on record, its
    result is not: the outcome is unknown) or ``completed`` with its result, inline
    (``result``) or in a blob (``blob_uri``, ``blob_sha256``, ``blob_bytes``). Activities
    are never superseded: a resume does not undo an effect that happened."""

    seq: int
    key: str
    kind: str
    step: int | None
    attempt: int
    status: str  # started | completed
    result: dict[str, Any] | None = None
    blob_uri: str | None = None
    blob_sha256: str | None = None
    blob_bytes: int | None = None
    recovered: bool = False


@dataclass(frozen=True, slots=True)
class Mismatch:
    seq: int
    step: int
    metric: str
    logged: float
    replayed: float


_EMPTY: MappingProxyType[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RunState:
    run_id: str
    last_seq: int = 0
    recipe: str | None = None
    workflow: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str | None = None
    seed: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    data_fingerprint: str | None = None
    run_dir: str | None = None
    lineage: tuple[ev.LineageRef, ...] = ()
    blob_store: dict[str, Any] = field(default_factory=dict)
    fork: ev.ForkPoint | None = None  # where the run forked from another one, if it did
    created_at: datetime | None = None
    updated_at: datetime | None = None
    status: str = "created"
    machine_state: str = INITIAL_MACHINE_STATE
    attempts: tuple[Attempt, ...] = ()
    step: int = 0
    epoch: int = 0
    stage: str | None = None  # the stage in flight (StageStarted without its end)
    step_metrics: dict[int, dict[str, Any]] = field(default_factory=dict)
    step_metric_seqs: dict[int, int] = field(default_factory=dict)  # seq that logged each step
    superseded_metrics: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    eval_metrics: dict[int, dict[str, Any]] = field(default_factory=dict)
    checkpoints: tuple[Checkpoint, ...] = ()
    superseded: tuple[tuple[int, int], ...] = ()  # (first_seq, last_seq) inclusive ranges
    optim_steps: tuple[int, ...] = ()  # effective optimizer steps, in order
    total_steps: int | None = None
    artifacts: tuple[ArtifactRecord, ...] = ()  # every artifact on record, superseded included
    mismatches: tuple[Mismatch, ...] = ()
    activities: dict[str, ActivityRecord] = field(default_factory=dict)  # by key, newest
    final_metrics: dict[str, Any] = field(default_factory=dict)
    adapter_uri: str | None = None
    error: tuple[str, str] | None = None  # (type, message) of RunFailed
    cancel_reason: str | None = None
    fault: tuple[str, str] | None = None  # (kind, reason) that stopped the last attempt, if any

    # ---- derived views (no state of their own)

    @property
    def attempt(self) -> int:
        return self.attempts[-1].number if self.attempts else 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def live_checkpoints(self) -> list[Checkpoint]:
        return [c for c in self.checkpoints if c.status == "live"]

    def is_superseded(self, seq: int) -> bool:
        return any(lo <= seq <= hi for lo, hi in self.superseded)

    def last_metrics(self) -> dict[str, Any]:
        return self.step_metrics[max(self.step_metrics)] if self.step_metrics else {}

    def effective_artifacts(self, kind: str | None = None) -> list[ArtifactRecord]:
        """Artifacts of the effective history (not superseded, not deleted), oldest first."""
        return [
            a
            for a in self.artifacts
            if (kind is None or a.kind == kind) and not a.deleted and not self.is_superseded(a.seq)
        ]

    def latest_artifact(self, kind: str) -> ArtifactRecord | None:
        found = self.effective_artifacts(kind)
        return found[-1] if found else None


Changes = dict[str, Any]  # field name -> new value (or _Added entries for a dict field)


@dataclass(frozen=True, slots=True)
class _Added:
    """Entries a handler adds to a dict field of the state.

    ``fold`` copies the field the first time it grows it and updates that copy in place after
    that, so a run that logs N steps folds in O(N) instead of copying a growing dict per step.
    """

    entries: dict[Any, Any]


@dataclass(frozen=True, slots=True)
class _Appended:
    """Items a handler appends to a tuple field of the state.

    Within one ``fold`` call the field is a list that call owns, extended in place, and it is
    made a tuple again when the call returns: folding the tail of a long run (from a snapshot)
    costs O(tail) instead of copying a 100,000-entry tuple for every optimizer step.
    """

    items: tuple[Any, ...]


Handler = Callable[[RunState, Recorded, Any], Changes]
_HANDLERS: dict[type[ev.Event], Handler] = {}


def _on(cls: type[ev.Event]) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _HANDLERS[cls] = fn
        return fn

    return register


def apply(state: RunState, rec: Recorded) -> RunState:
    """Return the state after ``rec``; ``state`` is left untouched."""
    return fold(state.run_id, (rec,), state)


def advance(state: RunState, rec: Recorded, owned: set[str]) -> RunState:
    """``apply`` for one writer that folds its own events one at a time (the runner).

    The returned state is a new object and ``state``'s own fields are left as they were, but
    the dict fields named in ``owned`` belong to the caller's line of states and grow in
    place: a run that has logged N steps adds its next step's metrics in O(1), where ``apply``
    copies the N-entry dict on every step (8 ms a step at 100,000 steps). ``owned`` starts
    empty and is kept by the caller between calls; a reader that wants a lasting snapshot of
    such a dict copies it.
    """
    return _fold_into(_clone(state), (rec,), owned)


def fold(run_id: str, records: Iterable[Recorded], state: RunState | None = None) -> RunState:
    """The state after ``records``, starting from ``state`` (untouched) or an empty run."""
    # ``s`` is a copy that only this call holds, so writing its fields in place is invisible
    # to everyone else. Handlers never mutate a collection of ``s``: they return new ones, or
    # _Added entries that are merged into a dict this call has copied (``owned``).
    s = _clone(state) if state is not None else RunState(run_id=run_id)
    return _fold_into(s, records, set())


_FIELDS = tuple(f.name for f in fields(RunState))
_get_all = attrgetter(*_FIELDS)
_SETTERS = tuple(getattr(RunState, name).__set__ for name in _FIELDS)  # slot descriptors


def _clone(state: RunState) -> RunState:
    """A shallow copy, about 3x faster than ``dataclasses.replace`` (no __init__ to run)."""
    new = object.__new__(RunState)
    for put, value in zip(_SETTERS, _get_all(state), strict=True):
        put(new, value)
    return new


def _fold_into(s: RunState, records: Iterable[Recorded], owned: set[str]) -> RunState:
    """Fold ``records`` into ``s``, a state only the caller holds; ``owned``: dict fields of
    ``s`` that are the caller's own copies (updated in place)."""
    put = object.__setattr__
    handlers = _HANDLERS
    grown: set[str] = set()  # tuple fields that are lists of this call's while it runs
    for rec in records:
        for name, value in handlers[type(rec.event)](s, rec, rec.event).items():
            if type(value) is _Added:
                if name in owned:
                    getattr(s, name).update(value.entries)
                    continue
                value = {**getattr(s, name), **value.entries}
                owned.add(name)
            elif type(value) is _Appended:
                if name in grown:
                    getattr(s, name).extend(value.items)
                    continue
                value = [*getattr(s, name), *value.items]
                grown.add(name)
            else:
                owned.discard(name)
                grown.discard(name)
            put(s, name, value)
        put(s, "last_seq", rec.seq)
        if rec.recorded_at is not None:
            put(s, "updated_at", rec.recorded_at)
    for name in grown:
        put(s, name, tuple(getattr(s, name)))
    return s


def stamp(
    state: RunState, first_seq: int, recorded_at: datetime, events: Iterable[ev.Event]
) -> RunState:
    """``state`` as if its ``events`` from ``first_seq`` on had been folded with ``recorded_at``.

    A writer folds its own events before the store gives them their time (one time for a
    batch); once the batch is committed, this puts that time where the fold of the stored
    events puts it (``updated_at``, a ``RunCreated``'s ``created_at``, an attempt's
    ``started_at``), so that the writer's state is the fold of its log again. The dict fields
    are shared with ``state``, as with ``advance``.
    """
    s = _clone(state)
    put = object.__setattr__
    put(s, "updated_at", recorded_at)
    if any(isinstance(e, ev.RunCreated) for e in events):
        put(s, "created_at", recorded_at)
    if any(a.started_seq >= first_seq for a in s.attempts):
        attempts = tuple(
            replace(a, started_at=recorded_at) if a.started_seq >= first_seq else a
            for a in s.attempts
        )
        put(s, "attempts", attempts)
    return s


def _end_attempt(state: RunState, how: str) -> tuple[Attempt, ...]:
    if not state.attempts or state.attempts[-1].ended is not None:
        return state.attempts
    return (*state.attempts[:-1], replace(state.attempts[-1], ended=how))


# --------------------------------------------------------------------------- lifecycle


@_on(ev.RunCreated)
def _run_created(s: RunState, r: Recorded, e: ev.RunCreated) -> Changes:
    return {
        "recipe": e.recipe,
        "workflow": e.workflow,
        "config": dict(e.config),
        "config_hash": e.config_hash,
        "seed": e.seed,
        "versions": dict(e.versions),
        "data_fingerprint": e.data_fingerprint,
        "run_dir": e.run_dir,
        "lineage": tuple(e.lineage),
        "blob_store": dict(e.blob_store),
        "fork": e.fork,
        # a fork's carried artifacts (DPO's reference …) are on record from its first event
        "artifacts": tuple(
            ArtifactRecord(r.seq, a.kind, a.uri, a.sha256, a.bytes, a.step, a.location)
            for a in (e.fork.artifacts if e.fork is not None else ())
        ),
        "created_at": r.recorded_at,
        "status": "created",
    }


def _backend_of(e: ev.AttemptStarted) -> dict[str, str]:
    """The backend's description; a v1 attempt recorded only its torch threads. An attempt on
    several processes adds ``world_size`` and ``dist_backend`` (v3)."""
    backend = dict(e.backend)
    if e.torch_threads is not None:
        backend.setdefault("torch_threads", str(e.torch_threads))
    if e.world_size > 1:
        backend["world_size"] = str(e.world_size)
        backend["dist_backend"] = str(e.dist_backend)
    return backend


@_on(ev.AttemptStarted)
def _attempt_started(s: RunState, r: Recorded, e: ev.AttemptStarted) -> Changes:
    attempt = Attempt(
        number=e.attempt,
        worker=e.worker,
        host=e.host,
        pid=e.pid,
        started_seq=r.seq,
        started_at=r.recorded_at,
        resumed_from=e.resumed_from,
        trace_id=e.trace_id,
        span_id=e.span_id,
        operating=None if e.operating is None else dict(e.operating),
        backend=_backend_of(e),
    )
    attempts = _end_attempt(s, "crashed")
    return {"attempts": (*attempts, attempt), "status": "running", "stage": None, "fault": None}


@_on(ev.RunResumed)
def _run_resumed(s: RunState, r: Recorded, e: ev.RunResumed) -> Changes:
    # Superseded: what earlier attempts logged after the checkpoint, up to the AttemptStarted
    # of this attempt (its own events, such as CheckpointInvalidated, are not superseded).
    lo = (e.from_checkpoint_seq or 0) + 1
    current = s.attempts[-1] if s.attempts and s.attempts[-1].number == e.attempt else None
    hi = (current.started_seq if current else r.seq) - 1
    superseded = (*s.superseded, (lo, hi)) if lo <= hi else s.superseded
    keep: dict[int, dict[str, Any]] = {}
    keep_seqs: dict[int, int] = {}
    moved = dict(s.superseded_metrics)
    for step, metrics in s.step_metrics.items():
        if step < e.from_step:
            keep[step] = metrics
            keep_seqs[step] = s.step_metric_seqs[step]
        else:
            moved[step] = (s.step_metric_seqs[step], metrics)
    evals = {k: v for k, v in s.eval_metrics.items() if k <= e.from_step}
    optim = tuple(x for x in s.optim_steps if x < e.from_step)
    return {
        "superseded": superseded,
        "step_metrics": keep,
        "step_metric_seqs": keep_seqs,
        "superseded_metrics": moved,
        "eval_metrics": evals,
        "optim_steps": optim,
        "step": e.from_step,
        "epoch": int(e.cursor.get("epoch", s.epoch)),
        "machine_state": e.machine_state,
        "status": "running",
        "stage": None,
    }


@_on(ev.AttemptInterrupted)
def _interrupted(s: RunState, r: Recorded, e: ev.AttemptInterrupted) -> Changes:
    fault = (e.fault, e.reason or "") if e.fault is not None else None
    return {
        "status": "interrupted",
        "attempts": _end_attempt(s, "interrupted"),
        "stage": None,
        "fault": fault,
    }


@_on(ev.RunCompleted)
def _completed(s: RunState, r: Recorded, e: ev.RunCompleted) -> Changes:
    return {
        "status": "completed",
        "machine_state": "completed",
        "attempts": _end_attempt(s, "completed"),
        "final_metrics": dict(e.metrics),
        "adapter_uri": e.adapter_uri,
        "step": e.step,
        "stage": None,
    }


@_on(ev.RunFailed)
def _failed(s: RunState, r: Recorded, e: ev.RunFailed) -> Changes:
    return {
        "status": "failed",
        "machine_state": "failed",
        "attempts": _end_attempt(s, "failed"),
        "error": (e.error_type, e.message),
        "stage": None,
    }


@_on(ev.RunCancelled)
def _cancelled(s: RunState, r: Recorded, e: ev.RunCancelled) -> Changes:
    return {
        "status": "cancelled",
        "machine_state": "cancelled",
        "attempts": _end_attempt(s, "cancelled"),
        "cancel_reason": e.reason,
        "stage": None,
    }


# --------------------------------------------------------------------------- stages


@_on(ev.StageStarted)
def _stage_started(s: RunState, r: Recorded, e: ev.StageStarted) -> Changes:
    return {"stage": e.stage, "step": e.step, "epoch": e.epoch}


@_on(ev.StageCompleted)
def _stage_completed(s: RunState, r: Recorded, e: ev.StageCompleted) -> Changes:
    new: Changes = {"stage": None, "machine_state": e.dest, "step": e.step, "epoch": e.epoch}
    if e.metrics:
        logged = {int(k): dict(v) for k, v in e.metrics.items()}
        new["step_metrics"] = _Added(logged)
        new["step_metric_seqs"] = _Added(dict.fromkeys(logged, r.seq))
    if e.optim_step is not None:
        new["optim_steps"] = _Appended((e.optim_step,))
    if e.eval_metrics:
        new["eval_metrics"] = _Added({e.step: dict(e.eval_metrics)})
    if e.artifacts:
        added = tuple(
            ArtifactRecord(r.seq, a.kind, a.uri, a.sha256, a.bytes, a.step, a.location)
            for a in e.artifacts
        )
        new["artifacts"] = (*s.artifacts, *added)
    if e.total_steps is not None:
        new["total_steps"] = e.total_steps
    return new


@_on(ev.StageFailed)
def _stage_failed(s: RunState, r: Recorded, e: ev.StageFailed) -> Changes:
    return {"stage": None}


# --------------------------------------------------------------------------- checkpoints


@_on(ev.CheckpointSaved)
def _checkpoint_saved(s: RunState, r: Recorded, e: ev.CheckpointSaved) -> Changes:
    ckpt = Checkpoint(
        seq=r.seq,
        name=e.name,
        step=e.step,
        epoch=e.epoch,
        uri=e.uri,
        sha256=e.sha256,
        bytes=e.bytes,
        machine_state=e.machine_state,
        cursor=dict(e.cursor),
        final=e.final,
        attempt=s.attempt,
        location=e.location,
    )
    return {"checkpoints": (*s.checkpoints, ckpt)}


def _mark_checkpoint(s: RunState, seq: int, status: str) -> Changes:
    # Searched from the newest: retention marks recent checkpoints, and a long run has
    # thousands on record (seqs are unique, so the first match is the only one).
    found = s.checkpoints
    for i in range(len(found) - 1, -1, -1):
        if found[i].seq == seq:
            return {"checkpoints": (*found[:i], replace(found[i], status=status), *found[i + 1 :])}
    return {}


@_on(ev.CheckpointInvalidated)
def _checkpoint_invalidated(s: RunState, r: Recorded, e: ev.CheckpointInvalidated) -> Changes:
    return _mark_checkpoint(s, e.checkpoint_seq, "invalidated")


@_on(ev.CheckpointDeleted)
def _checkpoint_deleted(s: RunState, r: Recorded, e: ev.CheckpointDeleted) -> Changes:
    return _mark_checkpoint(s, e.checkpoint_seq, "deleted")


@_on(ev.ArtifactDeleted)
def _artifact_deleted(s: RunState, r: Recorded, e: ev.ArtifactDeleted) -> Changes:
    marked = tuple(
        replace(a, deleted=True) if a.seq == e.artifact_seq and a.uri == e.uri else a
        for a in s.artifacts
    )
    return {"artifacts": marked}


@_on(ev.DeterminismMismatch)
def _mismatch(s: RunState, r: Recorded, e: ev.DeterminismMismatch) -> Changes:
    m = Mismatch(seq=r.seq, step=e.step, metric=e.metric, logged=e.logged, replayed=e.replayed)
    return {"mismatches": (*s.mismatches, m)}


@_on(ev.ActivityStarted)
def _activity_started(s: RunState, r: Recorded, e: ev.ActivityStarted) -> Changes:
    a = ActivityRecord(r.seq, e.key, e.kind, e.step, e.attempt, "started")
    return {"activities": _Added({e.key: a})}


@_on(ev.ActivityCompleted)
def _activity_completed(s: RunState, r: Recorded, e: ev.ActivityCompleted) -> Changes:
    blob = e.blob
    a = ActivityRecord(
        r.seq,
        e.key,
        e.kind,
        e.step,
        e.attempt,
        "completed",
        dict(e.result) if blob is None else None,
        blob.uri if blob else None,
        blob.sha256 if blob else None,
        blob.bytes if blob else None,
        e.recovered,
    )
    return {"activities": _Added({e.key: a})}


@_on(ev.TrackerRunOpened)
def _tracker_run_opened(s: RunState, r: Recorded, e: ev.TrackerRunOpened) -> Changes:
    return {}  # the trackers read it from the log; the run's state does not change


missing = set(ev.EVENT_TYPES.values()) - set(_HANDLERS)
assert not missing, f"event types without a fold handler: {missing}"
