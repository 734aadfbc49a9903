"""Everything ``kitchen serve`` persists, in one place: how requests become events, and back.

A served model is a kitchen run (``RunCreated(workflow="served", recipe="served")``). Its log:

- ``RunCreated`` (the model's spec as config) and one ``AttemptStarted`` per server process
  that drove it (a restart is a new attempt, resumed from the newest checkpoint);
- one ``StageCompleted`` per state-changing request, appended *before* the request is
  acknowledged: ``stage`` is the request kind (``forward_backward``, ``optim_step`` …),
  ``outputs`` hold the client's ``seq_id`` and the request id, and the request body, stored
  as a content-addressed blob, is its one ``artifacts`` entry (kind ``request``), so
  ``kitchen replay --verify`` re-hashes it like any artifact. An ``optim_step`` request
  carries ``optim_step``. The event records that the request was accepted in order; its
  effect follows from its input and the state before it, so results are not logged but
  recomputed on a rebuild (the local backend is deterministic on CPU);
- ``StageCompleted(stage="log_step_metrics", metrics=…)`` after each optimizer step (for
  ``kitchen show``), ``CheckpointSaved`` for each server-side checkpoint, whose ``cursor``
  names the last request seq it contains, and ``StageCompleted(stage="rebuild")`` with what a
  restart re-applied.

A rebuild (:meth:`Journal.plan`) is: the newest checkpoint whose blob verifies, then the
request events after its cursor, in order. Sessions and samplers are small JSON records
beside the runs. The engine owns none of this: adapting to a new event shape means editing
this module only.

The log is reached through its port (:class:`ServedLog`, the engine's ``EventLog``, two reads
and ``append_many``), handed in by whoever opened it, like the records its ``append`` takes:
this module writes :mod:`kitchen.engine.events` records and never imports the store. Every
append goes through the group commit (:mod:`kitchen.serve.commit`): the events of a burst of
requests share one transaction, and each caller waits for its own to be committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kitchen.config import config_hash
from kitchen.engine import events as ev
from kitchen.engine import registry, trackers
from kitchen.engine.runner import Reporter
from kitchen.errors import CheckpointCorrupt, KitchenError
from kitchen.log_records import NewEvent, RunRow, StoredEvent
from kitchen.ports import BlobRef, EventLog
from kitchen.serve import ids
from kitchen.serve.commit import GroupCommit

SERVED = "served"
REQUEST_KINDS = frozenset(
    {
        "forward_backward",
        "forward",
        "optim_step",
        "save_weights",
        "load_weights",
        "save_weights_for_sampler",
        "save_weights_external",
    }
)
LEASE_TTL_S = 30.0


class ServedLog(EventLog, Protocol):
    """The log as the server uses it: the engine's ``EventLog`` (append, read, leases), where
    a run's log ends, the runs of a recipe (the served models), and several runs' appends in
    one transaction (group commit). ``kitchen.store.EventStore`` is one."""

    def last_seq(self, run_id: str) -> int: ...

    def append_many(
        self, batches: Sequence[tuple[str, Sequence[NewEvent], int]]
    ) -> list[list[StoredEvent]]: ...

    def list_runs(
        self, status: str | None = None, recipe: str | None = None
    ) -> Sequence[RunRow]: ...


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What a served model was created with: enough to build it again from nothing."""

    model_id: str
    session_id: str
    model_seq_id: int
    owner: str
    base_model: str
    lora_rank: int
    seed: int
    train_attn: bool = True
    train_mlp: bool = True
    train_unembed: bool = True
    source: dict[str, Any] | None = None
    """Created from a checkpoint: {path, uri, sha256, bytes, optimizer}."""
    max_tokens_per_microbatch: int | None = None
    """The server's micro-batch budget when the model was created; None (one batch a call) is
    what a model recorded before the setting existed was trained with."""
    loggers: tuple[str, ...] = ()
    """The trackers its step metrics go to (``kitchen serve --loggers``); none for a model
    recorded before the setting existed."""

    @property
    def run_id(self) -> str:
        return ids.run_id_of(self.model_id)

    @property
    def run_dir(self) -> str:
        """Relative to KITCHEN_HOME, inside the owner's folder."""
        return f"serve/owners/{self.owner}/runs/{self.run_id}"

    def config(self) -> dict[str, Any]:
        """As recorded in the model's ``RunCreated`` (JSON: the trackers as a list, and left
        out when there are none, as a model recorded before the setting has them)."""
        out = asdict(self)
        loggers = out.pop("loggers")
        return {**out, "loggers": list(loggers)} if loggers else out

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelSpec:
        given = {k: config[k] for k in cls.__dataclass_fields__ if k in config}
        if "loggers" in given:
            given["loggers"] = tuple(given["loggers"])
        return cls(**given)


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    seq: int  # event seq in the run's log
    seq_id: int  # the client's seq_id
    kind: str
    request_id: str
    input_uri: str
    input_sha256: str
    input_bytes: int


@dataclass(frozen=True, slots=True)
class CheckpointRef:
    seq: int
    name: str
    step: int
    uri: str
    sha256: str
    bytes: int
    request_seq: int  # the last request event this checkpoint contains


@dataclass(slots=True)
class RebuildPlan:
    spec: ModelSpec
    checkpoint: CheckpointRef | None
    replay: list[LoggedRequest]
    next_seq_id: int
    steps_at_checkpoint: int
    last_seq: int
    attempt: int
    invalid: list[CheckpointRef] = field(default_factory=list)


BLOB_STORE = {"adapter": "local"}


class Journal:
    """The served models' log, their request blobs, and the session and sampler records."""

    def __init__(self, log: ServedLog, home: Path) -> None:
        self.log = log
        self.home = home
        # Served models keep their blobs in the server's local store, recorded as such in
        # each model's RunCreated (blob_store), and read back through it.
        self.blobs = registry.run_blob_store({}, BLOB_STORE, home)
        self._attempts: dict[str, int] = {}
        self._commits = GroupCommit(log)
        # store-and-record of incoming requests (``record_input``), each blocking on its commit
        self._recorders = ThreadPoolExecutor(max_workers=32, thread_name_prefix="serve-record")
        self._holder = f"{socket.gethostname()}:{os.getpid()}:serve"
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._feeds: dict[str, trackers.Feeding] = {}  # run id -> its trackers, once opened
        self._feed_locks: dict[str, threading.Lock] = {}  # one model's trackers fed at a time
        self._feed_guard = threading.Lock()

    # ------------------------------------------------------------------ folders and blobs

    def owner_dir(self, owner: str) -> Path:
        return self.home / "serve" / "owners" / owner

    def put_input(self, owner: str, data: bytes) -> BlobRef:
        """Store a request body content-addressed (fsync'd) in its owner's folder."""
        sha = hashlib.sha256(data).hexdigest()
        key = f"serve/owners/{owner}/inputs/{sha[:2]}/{sha}"
        path = self.home / key
        if path.is_file() and path.stat().st_size == len(data):
            return BlobRef(key, sha, len(data))
        return self.blobs.write_bytes(key, data)

    def read_input(self, req: LoggedRequest) -> bytes:
        data = self.blobs.read_bytes(req.input_uri)
        if hashlib.sha256(data).hexdigest() != req.input_sha256:
            raise CheckpointCorrupt(
                f"request blob {req.input_uri} does not match its sha256 (seq {req.seq})"
            )
        return data

    # ------------------------------------------------------------------ appends

    def _append(
        self, run_id: str, events: Iterable[ev.Event], tip: int | None = None
    ) -> list[StoredEvent]:
        """Append through the group commit and wait for it; ``tip``: where the run's log ends,
        if the caller knows better than the journal (a new run, a model taken up)."""
        return self._commits.submit(run_id, _new(events), tip=tip).result()

    def submit_request(
        self, spec: ModelSpec, kind: str, seq_id: int, ref: BlobRef, step: int, dest: str
    ) -> Future[list[StoredEvent]]:
        """Put a request whose blob is stored (``put_input``) on record, committed together
        with whatever else arrives meanwhile. The request is on record once the future is
        done without an exception: only then may it be acknowledged."""
        event = _request_event(spec, kind, seq_id, ref, step, dest)
        return self._commits.submit(spec.run_id, _new([event]))

    def record_input(
        self,
        spec: ModelSpec,
        owner: str,
        kind: str,
        seq_id: int,
        body: bytes,
        step: int,
        dest: str,
    ) -> Future[int]:
        """``put_input`` then ``submit_request``, on one of the journal's threads, which waits
        for the commit: the future gives the request event's seq once the request is on
        record. One hand-off back to the caller's event loop instead of two."""

        def run() -> int:
            ref = self.put_input(owner, body)
            return self.submit_request(spec, kind, seq_id, ref, step, dest).result()[0].seq

        return self._recorders.submit(run)

    def create_model(self, spec: ModelSpec, versions: dict[str, str]) -> None:
        """RunCreated + AttemptStarted of a new served model; ConcurrencyConflict if it exists."""
        config = spec.config()
        created = ev.RunCreated(
            recipe=SERVED,
            workflow=SERVED,
            config=config,
            config_hash=config_hash(config),
            seed=spec.seed,
            versions=versions,
            run_dir=spec.run_dir,
            blob_store=dict(BLOB_STORE),
        )
        self._append(spec.run_id, [created, self._attempt_started(spec.run_id, 1, None)], tip=0)
        self._lease(spec.run_id, 1)

    def _attempt_started(self, run_id: str, attempt: int, resumed_from: int | None) -> ev.Event:
        self._attempts[run_id] = attempt
        return ev.AttemptStarted(
            attempt=attempt,
            worker=self._holder,
            host=socket.gethostname(),
            pid=os.getpid(),
            resumed_from=resumed_from,
        )

    def record_request(
        self, spec: ModelSpec, kind: str, seq_id: int, ref: BlobRef, step: int, dest: str
    ) -> int:
        """The request (its blob already stored) is on record once this returns: only then
        may it be acknowledged."""
        event = _request_event(spec, kind, seq_id, ref, step, dest)
        return self._append(spec.run_id, [event])[0].seq

    def record_metrics(self, spec: ModelSpec, step: int, metrics: dict[str, float]) -> None:
        """Append a step's metrics and wait for it, then feed the model's trackers."""
        self.submit_metrics(spec, step, metrics).result()
        if spec.loggers:
            self._track(spec)

    def submit_metrics(
        self, spec: ModelSpec, step: int, metrics: dict[str, float]
    ) -> Future[list[StoredEvent]]:
        """Queue a step's metrics for the group commit without waiting: no answer depends on
        them (the step's own result is already out), and the model's later appends are
        committed after them, in order."""
        clean = {k: float(v) for k, v in metrics.items() if v == v and abs(v) != float("inf")}
        event = ev.StageCompleted(
            stage="log_step_metrics",
            dest="ready",
            step=step,
            epoch=0,
            duration_s=0.0,
            metrics={str(step): clean},
        )
        return self._commits.submit(spec.run_id, _new([event]))

    def _track(self, spec: ModelSpec) -> None:
        """The model's trackers get its committed steps: the first time in this process,
        every one they lack (what an earlier server process sent is read back), then the new
        ones. A tracker that fails stops for this process, never the request."""
        run_id = spec.run_id
        with self._feed_guard:
            lock = self._feed_locks.setdefault(run_id, threading.Lock())
        with lock:
            feeding = self._feeds.get(run_id)
            if feeding is None:
                feeding = trackers.Feeding(
                    Reporter(), self.log, run_id, self.home / spec.run_dir, list(spec.loggers)
                )
                feeding.record = lambda event: self._append(run_id, [event])
                self._feeds[run_id] = feeding
                feeding.open()
            feeding.feed()

    def record_checkpoint(
        self, spec: ModelSpec, name: str, step: int, ref: BlobRef, request_seq: int
    ) -> None:
        """Only after the folder is durable (``write_dir`` fsyncs and renames it into place)."""
        event = ev.CheckpointSaved(
            name=name,
            step=step,
            epoch=0,
            uri=ref.uri,
            sha256=ref.sha256,
            bytes=ref.bytes,
            machine_state="ready",
            cursor={"request_seq": request_seq},
        )
        self._append(spec.run_id, [event])

    def begin_attempt(self, plan: RebuildPlan) -> None:
        """A restarted server takes the model over: a new attempt, resumed from the checkpoint."""
        run_id = plan.spec.run_id
        bad = [
            ev.CheckpointInvalidated(
                checkpoint_seq=c.seq, uri=c.uri, reason="blob missing or corrupt"
            )
            for c in plan.invalid
        ]
        resumed = plan.checkpoint.seq if plan.checkpoint else None
        self._append(
            run_id, [*bad, self._attempt_started(run_id, plan.attempt, resumed)], tip=plan.last_seq
        )
        self._lease(run_id, plan.attempt)

    def record_rebuild(self, plan: RebuildPlan, steps: int, optim_steps: int) -> None:
        event = ev.StageCompleted(
            stage="rebuild",
            dest="ready",
            step=steps,
            epoch=0,
            outputs={
                "from_checkpoint_seq": plan.checkpoint.seq if plan.checkpoint else None,
                "replayed_requests": len(plan.replay),
                "replayed_optim_steps": optim_steps,
            },
            duration_s=0.0,
        )
        self._append(plan.spec.run_id, [event])

    # ------------------------------------------------------------------ reads

    def spec_of(self, run_id: str) -> ModelSpec | None:
        """A served model's spec from its first event alone, or None if the run is not one."""
        rows = self.log.read(run_id, 0, 1)
        if not is_served(rows):
            return None
        return ModelSpec.from_config(rows[0].payload["config"])

    def served_runs(self) -> list[str]:
        return [row.run_id for row in self.log.list_runs(recipe=SERVED)]

    def plan(self, run_id: str) -> RebuildPlan:
        """Fold a served run's log into what a rebuild needs: spec, checkpoint, requests after."""
        rows = self.log.read(run_id)
        if not rows or rows[0].type != "RunCreated":
            raise KitchenError(f"run {run_id} is not a served model")
        spec = ModelSpec.from_config(rows[0].payload["config"])
        requests: list[LoggedRequest] = []
        checkpoints: list[CheckpointRef] = []
        dead: set[int] = set()
        attempt = 0
        for row in rows:
            p = row.payload
            if row.type == "AttemptStarted":
                attempt = max(attempt, int(p["attempt"]))
            elif row.type == "StageCompleted" and p["stage"] in REQUEST_KINDS:
                requests.append(_logged(row))
            elif row.type == "CheckpointSaved":
                checkpoints.append(_checkpoint(row))
            elif row.type in ("CheckpointInvalidated", "CheckpointDeleted"):
                dead.add(int(p["checkpoint_seq"]))
        chosen, invalid = None, []
        for c in reversed(checkpoints):
            if c.seq in dead:
                continue
            if self.blobs.verify(BlobRef(c.uri, c.sha256, c.bytes)):
                chosen = c
                break
            invalid.append(c)
        after = chosen.request_seq if chosen else 0
        return RebuildPlan(
            spec=spec,
            checkpoint=chosen,
            replay=[r for r in requests if r.seq > after],
            next_seq_id=max((r.seq_id for r in requests), default=0) + 1,
            steps_at_checkpoint=chosen.step if chosen else 0,
            last_seq=rows[-1].seq,
            attempt=attempt + 1,
            invalid=invalid,
        )

    # ------------------------------------------------------------------ leases

    def _lease(self, run_id: str, attempt: int) -> None:
        """Hold the run's lease while this process serves it, so ``kitchen runs`` shows it
        running, and crashed once the process is gone."""
        self.log.acquire_lease(
            run_id,
            self._holder,
            host=socket.gethostname(),
            pid=os.getpid(),
            attempt=attempt,
            ttl_s=LEASE_TTL_S,
        )
        if self._renewer is None:
            self._renewer = threading.Thread(target=self._renew, name="serve-leases", daemon=True)
            self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_TTL_S / 3):
            for run_id in list(self._attempts):
                try:
                    self.log.renew_lease(run_id, self._holder, LEASE_TTL_S)
                except KitchenError:
                    continue

    def close(self) -> None:
        self._recorders.shutdown(wait=True)
        self._commits.close()
        self._stop.set()
        for feeding in list(self._feeds.values()):
            feeding.close()
        self._feeds.clear()
        for run_id in list(self._attempts):
            try:
                self.log.release_lease(run_id, self._holder)
            except KitchenError:
                continue

    # ------------------------------------------------------------------ sessions, samplers

    def save_session(self, session_id: str, owner: str, meta: dict[str, Any]) -> None:
        _write_json(self._record_path("sessions", session_id), {"owner": owner, **meta})

    def load_session(self, session_id: str) -> dict[str, Any] | None:
        if not ids.SESSION.fullmatch(session_id):
            return None
        return _read_json(self._record_path("sessions", session_id))

    def save_sampler(self, sampler: str, record: dict[str, Any]) -> None:
        _write_json(self._record_path("samplers", sampler), record)

    def load_sampler(self, sampler: str) -> dict[str, Any] | None:
        session, sep, n = sampler.partition(":sample:")
        if not sep or not ids.SESSION.fullmatch(session) or not n.isdigit() or len(n) > 12:
            return None
        return _read_json(self._record_path("samplers", sampler))

    def _record_path(self, kind: str, name: str) -> Path:
        return self.home / "serve" / kind / f"{name.replace(':', '_')}.json"


def _new(events: Iterable[ev.Event]) -> list[NewEvent]:
    return [NewEvent(e.type_name(), e.payload(), e.schema_version) for e in events]


def _request_event(
    spec: ModelSpec, kind: str, seq_id: int, ref: BlobRef, step: int, dest: str
) -> ev.Event:
    return ev.StageCompleted(
        stage=kind,
        dest=dest,
        step=step,
        epoch=0,
        outputs={"seq_id": seq_id, "request_id": ids.request_id(spec.model_id, seq_id)},
        duration_s=0.0,
        optim_step=step if kind == "optim_step" else None,
        artifacts=[
            ev.Artifact(kind="request", uri=ref.uri, sha256=ref.sha256, bytes=ref.bytes, step=step)
        ],
    )


def _logged(row: StoredEvent) -> LoggedRequest:
    out = row.payload["outputs"]
    (blob,) = [a for a in row.payload["artifacts"] if a["kind"] == "request"]
    return LoggedRequest(
        seq=row.seq,
        seq_id=int(out["seq_id"]),
        kind=row.payload["stage"],
        request_id=out["request_id"],
        input_uri=blob["uri"],
        input_sha256=blob["sha256"],
        input_bytes=int(blob["bytes"]),
    )


def _checkpoint(row: StoredEvent) -> CheckpointRef:
    p = row.payload
    return CheckpointRef(
        seq=row.seq,
        name=p["name"],
        step=int(p["step"]),
        uri=p["uri"],
        sha256=p["sha256"],
        bytes=int(p["bytes"]),
        request_seq=int(p.get("cursor", {}).get("request_seq", 0)),
    )


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(value, sort_keys=True))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def is_served(rows: list[StoredEvent]) -> bool:
    """True if a run's log is a served model's (for the CLI commands that leave it alone)."""
    return bool(rows) and rows[0].type == "RunCreated" and rows[0].payload.get("workflow") == SERVED
