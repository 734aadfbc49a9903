"""Event records: one frozen pydantic model per event type of the run log.

These are the public contract documented in ``docs/events.md``. Every type has a
``schema_version``; reading an older version upcasts its payload through the functions in
``UPCASTERS``, a newer or unknown one raises :class:`kitchen.errors.EventSchemaError`, because
silently folding history we do not understand would make the audit trail lie.

Steps: ``step`` is the 0-based index of the batch an event concerns. A checkpoint's ``step``
is the number of optimizer steps it contains, i.e. the first step to run after resuming.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kitchen.errors import EventSchemaError


class Event(BaseModel):
    """Base of every event. Subclasses are registered in ``EVENT_TYPES`` by class name."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: ClassVar[int] = 1

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------- run lifecycle


class Artifact(BaseModel):
    """A durable output of a run: written whole (atomically), hashed, then put on record.

    ``kind`` says what it is (``checkpoint``, ``final_weights``, ``reference_logprobs``,
    ``rollouts``, ``teacher_outputs``, ``request`` …); the engine treats every kind alike.
    ``uri`` is relative to KITCHEN_HOME for a local blob, or a remote reference
    (``tinker://…``) when ``location`` is ``remote``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    uri: str
    sha256: str
    bytes: int
    step: int | None = None
    location: Literal["local", "remote"] = "local"


class LineageRef(BaseModel):
    """Weights a run was started from (``parent``) or taught by (``teacher``).

    ``source`` is what the user gave (``run:<id>[@checkpoint]``, a folder, a base model);
    for a run, ``run_id`` and ``what`` (a checkpoint name, or ``final``) say what was taken;
    ``sha256``/``bytes`` are the weights' hash, checked again on every resume.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: str
    source: str
    kind: Literal["run", "folder", "base_model"]
    run_id: str | None = None
    what: str | None = None
    uri: str | None = None
    step: int | None = None
    sha256: str | None = None
    bytes: int | None = None


class ForkPoint(BaseModel):
    """Where a fork (``kitchen fork ID@STEP``) starts: run ``run_id``'s exact state at
    optimizer step ``step``.

    ``checkpoint`` names the parent's checkpoint the state was taken from; when the parent
    had none at ``step``, ``from_step`` is the step of the checkpoint it was re-executed from
    (0: from the parent's start) and ``reexecuted`` the steps re-executed on the parent's
    recorded data, each compared with the parent's log; ``mismatches`` are the steps that
    differed (accepted only with ``--force``, then ``forced``). ``sha256``/``bytes`` hash the
    state as the fork's own first checkpoint holds it; ``overrides`` are the identity keys
    changed at the fork, ``{key: new value}``; ``artifacts`` are the parent's run-wide
    artifacts the fork carries (DPO's reference, a teacher's completions), copied into the
    fork's folder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    step: int
    checkpoint: str | None = None
    from_step: int
    reexecuted: int = 0
    mismatches: list[str] = Field(default_factory=list)
    forced: bool = False
    sha256: str
    bytes: int
    overrides: dict[str, Any] = Field(default_factory=dict)
    artifacts: list[Artifact] = Field(default_factory=list)


class RunCreated(Event):
    """A run exists. ``config`` is every key as the first attempt had it (secrets redacted);
    ``config_hash`` is the hash of its *identity* (every key but the operating settings: see
    docs/config.md); ``blob_store`` says where the run's blobs live (the adapter's name and
    its location, never credentials or an endpoint), which every resume reads from.

    v2 added ``lineage``; v3 added ``blob_store``, and ``config_hash`` leaves out operating
    settings (a resume compares hashes it computes itself, so older hashes stay valid);
    v4 added ``fork``: where a fork starts (``None``: the run is no fork, and the payload
    leaves the key out)."""

    schema_version: ClassVar[int] = 4

    recipe: str
    workflow: str
    config: dict[str, Any]
    config_hash: str
    seed: int
    versions: dict[str, str]
    data_fingerprint: str | None = None
    run_dir: str
    lineage: list[LineageRef] = Field(default_factory=list)
    blob_store: dict[str, Any] = Field(default_factory=lambda: {"adapter": "local"})
    fork: ForkPoint | None = None

    def payload(self) -> dict[str, Any]:
        """A run that is no fork leaves ``fork`` out: its payload reads as in v3."""
        return self.model_dump(mode="json", exclude={"fork"} if self.fork is None else set())


class AttemptStarted(Event):
    """An attempt began. ``operating``: the operating settings it runs with (config keys,
    secrets redacted; ``None`` for attempts recorded before v2); ``backend``: how the
    training backend describes itself (``backend``, ``device``, ``dtype``, ``torch_threads``).

    ``world_size``: how many processes run the attempt (``torchrun``), ``dist_backend`` the
    collectives' transport (``gloo``, ``nccl``; ``None`` on one process).

    v2 added ``operating`` and ``backend``; v3 ``world_size`` and ``dist_backend``."""

    schema_version: ClassVar[int] = 3

    attempt: int
    worker: str
    host: str
    pid: int
    trace_id: str | None = None
    span_id: str | None = None
    resumed_from: int | None = None  # seq of the CheckpointSaved resumed from
    torch_threads: int | None = None
    operating: dict[str, Any] | None = None
    backend: dict[str, str] = Field(default_factory=dict)
    world_size: int = 1
    dist_backend: str | None = None


class RunResumed(Event):
    attempt: int
    from_checkpoint_seq: int | None
    from_step: int
    machine_state: str
    cursor: dict[str, Any] = Field(default_factory=dict)
    config_hash: str
    data_fingerprint: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    torch_threads: int | None = None
    differences: list[str] = Field(default_factory=list)
    forced: bool = False


class AttemptInterrupted(Event):
    """The attempt stopped, and the run can be resumed: asked to by a signal (``signal``), or
    stopped by a fault outside the run (``fault``: ``disk_full``, ``read_only``, ``io_error``,
    ``store_unavailable``, ``service_unavailable``, ``infrastructure``; ``reason``: the error's
    one line; ``stage``: the stage it happened in, if any). The runner sets one of ``signal``
    and ``fault``.

    v2 added ``fault``, ``reason`` and ``stage`` and made ``signal`` optional."""

    schema_version: ClassVar[int] = 2

    attempt: int
    signal: str | None = None
    step: int | None = None
    fault: str | None = None
    reason: str | None = None
    stage: str | None = None

    def payload(self) -> dict[str, Any]:
        """Unset fields are left out: a signal's payload reads as it did in v1."""
        unset = {key for key in _UNSET_IF_NONE if getattr(self, key) is None}
        return self.model_dump(mode="json", exclude=unset)


_UNSET_IF_NONE = ("signal", "fault", "reason", "stage")


class RunCompleted(Event):
    step: int
    metrics: dict[str, float] = Field(default_factory=dict)
    adapter_uri: str | None = None


class RunFailed(Event):
    error_type: str
    message: str
    stage: str | None = None
    step: int | None = None


class RunCancelled(Event):
    reason: str
    step: int | None = None


# --------------------------------------------------------------------------- stages


class StageStarted(Event):
    stage: str
    source: str
    dest: str
    step: int
    epoch: int
    attempt: int


class StageCompleted(Event):
    """A stage ended. Besides its free-form ``outputs``, it carries the workflow-neutral facts
    the fold reads (never a stage's or a metric's name):

    - ``optim_step``: the step whose optimizer step this stage applied (submitted);
    - ``metrics``: training metrics logged by this stage, ``{step: {name: value}}``;
    - ``eval_metrics``: held-out metrics measured at ``step``;
    - ``artifacts``: blobs written whole and now on record;
    - ``total_steps``: the planned number of steps, once known.

    Facts left empty are not written to the payload, so a step's events stay as small as
    they were.
    """

    schema_version: ClassVar[int] = 2

    stage: str
    dest: str
    step: int
    epoch: int
    outputs: dict[str, Any] = Field(default_factory=dict)
    duration_s: float
    optim_step: int | None = None
    metrics: dict[str, dict[str, float | int]] = Field(default_factory=dict)
    eval_metrics: dict[str, float | int] = Field(default_factory=dict)
    artifacts: list[Artifact] = Field(default_factory=list)
    total_steps: int | None = None

    def payload(self) -> dict[str, Any]:
        empty = {key for key in _OPTIONAL_FACTS if getattr(self, key) in (None, {}, [])}
        return self.model_dump(mode="json", exclude=empty)


_OPTIONAL_FACTS = ("optim_step", "metrics", "eval_metrics", "artifacts", "total_steps")


class StageFailed(Event):
    stage: str
    step: int
    epoch: int
    error_type: str
    message: str


# --------------------------------------------------------------------------- checkpoints


class CheckpointSaved(Event):
    """``location`` ``local``: ``uri`` is a blob folder under KITCHEN_HOME, verified by
    re-hashing it. ``remote``: ``uri`` is a service's reference (``tinker://…``), verified
    by asking that service, restored through the training port.

    ``preemption``: saved because the attempt was preempted (SIGTERM, SIGUSR1) at a step that
    ``save_every`` would not have saved; v3 added it (earlier checkpoints were none)."""

    schema_version: ClassVar[int] = 3

    name: str
    step: int  # optimizer steps contained = first step after resuming
    epoch: int
    uri: str
    sha256: str
    bytes: int
    machine_state: str
    cursor: dict[str, Any] = Field(default_factory=dict)
    final: bool = False
    location: Literal["local", "remote"] = "local"
    preemption: bool = False

    def payload(self) -> dict[str, Any]:
        """``preemption`` only when set: other checkpoints read as they did in v2."""
        return self.model_dump(mode="json", exclude=set() if self.preemption else {"preemption"})


class CheckpointInvalidated(Event):
    checkpoint_seq: int
    uri: str
    reason: str


class CheckpointDeleted(Event):
    checkpoint_seq: int
    uri: str
    step: int


class ArtifactDeleted(Event):
    """An artifact's blob was removed by retention (after the newer one was on record)."""

    artifact_seq: int
    kind: str
    uri: str


class DeterminismMismatch(Event):
    """A re-executed step's metric differs from what an earlier attempt logged by more than
    ``tolerance`` (absolute) and ``relative_tolerance`` (relative to the logged value; 0
    unless a float-moving operating setting changed between the two attempts, ``changed``).

    v2 added ``relative_tolerance`` and ``changed``."""

    schema_version: ClassVar[int] = 2

    step: int
    metric: str
    logged: float
    replayed: float
    tolerance: float
    logged_seq: int
    relative_tolerance: float = 0.0
    changed: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------- activities


class ActivityStarted(Event):
    """An activity whose effect must not happen twice (an environment step that declares its
    effect happens once) is about to run; committed before it does. A resume that finds this
    without the matching :class:`ActivityCompleted` knows the outcome is unknown: the process
    may have died before or after the effect."""

    key: str
    kind: str
    step: int | None = None
    attempt: int


class ActivityCompleted(Event):
    """An activity's result, committed before the stage that ran it goes on; a resumed run
    reads it instead of running the activity again. ``result`` holds the result inline, or is
    empty when it is in a content-addressed blob (``blob``, kind ``activity``). ``recovered``:
    the result came from the activity's unknown-outcome hook (its start was on record, its
    result was not)."""

    key: str
    kind: str
    step: int | None = None
    attempt: int
    result: dict[str, Any] = Field(default_factory=dict)
    blob: Artifact | None = None
    recovered: bool = False


# --------------------------------------------------------------------------- trackers


class TrackerRunOpened(Event):
    """A tracker that keeps runs of its own (``loggers=mlflow``) opened one for this run:
    ``tracker_run_id`` is its id there, which every later attempt continues."""

    tracker: str
    tracker_run_id: str
    attempt: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        RunCreated,
        AttemptStarted,
        RunResumed,
        AttemptInterrupted,
        RunCompleted,
        RunFailed,
        RunCancelled,
        StageStarted,
        StageCompleted,
        StageFailed,
        CheckpointSaved,
        CheckpointInvalidated,
        CheckpointDeleted,
        ArtifactDeleted,
        DeterminismMismatch,
        ActivityStarted,
        ActivityCompleted,
        TrackerRunOpened,
    )
}

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
# (type name, from version) -> function turning that version's payload into version + 1.


def _run_created_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v2 added ``lineage``; a v1 run was never started from another run's weights."""
    return {**data, "lineage": []}


def _checkpoint_saved_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v2 added ``location``; every v1 checkpoint is a local blob folder."""
    return {**data, "location": "local"}


def _checkpoint_saved_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v3 added ``preemption``; no v2 checkpoint was saved for a preemption."""
    return {**data, "preemption": False}


def _attempt_interrupted_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v2 added ``fault``, ``reason`` and ``stage``; every v1 interruption was a signal."""
    return {**data, "fault": None, "reason": None, "stage": None}


def _run_created_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v3 added ``blob_store``; a v2 run kept its blobs in the store its adapters manifest
    named (``local`` unless ``adapters.blobs`` said otherwise)."""
    adapters = (data.get("config") or {}).get("adapters") or {}
    name = adapters.get("blobs", "local") if isinstance(adapters, dict) else "local"
    return {**data, "blob_store": {"adapter": name}}


def _run_created_v3(data: dict[str, Any]) -> dict[str, Any]:
    """v4 added ``fork``; no run before it was a fork."""
    return {**data, "fork": None}


def _attempt_started_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v2 added ``operating`` (unknown for a v1 attempt: None) and ``backend``."""
    return {**data, "operating": None, "backend": {}}


def _attempt_started_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v3 added ``world_size`` and ``dist_backend``; every earlier attempt ran on one process."""
    return {**data, "world_size": 1, "dist_backend": None}


def _determinism_mismatch_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v2 added ``relative_tolerance`` and ``changed``; v1 compared absolutely, always."""
    return {**data, "relative_tolerance": 0.0, "changed": []}


def _stage_completed_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v1 said what happened through the supervised workflow's stage names; v2 says it in
    typed fields. This is the one place that still knows those names: it reads old logs."""
    out = {**data, "outputs": dict(data.get("outputs") or {})}
    outputs, stage = out["outputs"], data.get("stage")
    if stage == "log_step_metrics" and isinstance(outputs.get("steps"), dict):
        out["metrics"] = outputs.pop("steps")
    elif stage == "optim_step":
        out["optim_step"] = data["step"]
    elif stage == "evaluate" and isinstance(outputs.get("metrics"), dict):
        out["eval_metrics"] = outputs.pop("metrics")
    elif stage == "save_final_weights" and isinstance(outputs.get("sha256"), str):
        out["artifacts"] = [
            {
                "kind": "final_weights",
                "uri": outputs["uri"],
                "sha256": outputs["sha256"],
                "bytes": outputs["bytes"],
                "step": data["step"],
            }
        ]
    elif stage == "build_supervised_dataset" and "total_steps" in outputs:
        out["total_steps"] = outputs["total_steps"]
    return out


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("RunCreated", 1): _run_created_v1,
    ("RunCreated", 2): _run_created_v2,
    ("RunCreated", 3): _run_created_v3,
    ("AttemptStarted", 1): _attempt_started_v1,
    ("AttemptStarted", 2): _attempt_started_v2,
    ("DeterminismMismatch", 1): _determinism_mismatch_v1,
    ("CheckpointSaved", 1): _checkpoint_saved_v1,
    ("CheckpointSaved", 2): _checkpoint_saved_v2,
    ("StageCompleted", 1): _stage_completed_v1,
    ("AttemptInterrupted", 1): _attempt_interrupted_v1,
}


def decode(type_name: str, schema_version: int, payload: Mapping[str, Any]) -> Event:
    """Build the event record for a stored row, upcasting older payload versions."""
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise EventSchemaError(
            f"unknown event type {type_name!r}: this kitchen is older than the log; upgrade kitchen"
        )
    current = cls.schema_version
    if schema_version > current:
        raise EventSchemaError(
            f"{type_name} has schema_version {schema_version} but this kitchen reads up to "
            f"{current}; upgrade kitchen to read this log"
        )
    data = dict(payload)
    for version in range(schema_version, current):
        upcast = UPCASTERS.get((type_name, version))
        if upcast is None:
            raise EventSchemaError(f"no upcaster for {type_name} v{version} -> v{version + 1}")
        data = upcast(data)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EventSchemaError(
            f"{type_name} payload is invalid at {where}: {first['msg']}"
        ) from None


__all__ = [
    "EVENT_TYPES",
    "UPCASTERS",
    "ActivityCompleted",
    "ActivityStarted",
    "Artifact",
    "ArtifactDeleted",
    "AttemptInterrupted",
    "AttemptStarted",
    "CheckpointDeleted",
    "CheckpointInvalidated",
    "CheckpointSaved",
    "DeterminismMismatch",
    "Event",
    "ForkPoint",
    "LineageRef",
    "RunCancelled",
    "RunCompleted",
    "RunCreated",
    "RunFailed",
    "RunResumed",
    "StageCompleted",
    "StageFailed",
    "StageStarted",
    "TrackerRunOpened",
    "decode",
]
