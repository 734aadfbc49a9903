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
from typing import Any, ClassVar

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


class RunCreated(Event):
    recipe: str
    workflow: str
    config: dict[str, Any]
    config_hash: str
    seed: int
    versions: dict[str, str]
    data_fingerprint: str | None = None
    run_dir: str


class AttemptStarted(Event):
    attempt: int
    worker: str
    host: str
    pid: int
    trace_id: str | None = None
    span_id: str | None = None
    resumed_from: int | None = None  # seq of the CheckpointSaved resumed from
    torch_threads: int | None = None


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
    attempt: int
    signal: str
    step: int | None = None


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
    stage: str
    dest: str
    step: int
    epoch: int
    outputs: dict[str, Any] = Field(default_factory=dict)
    duration_s: float


class StageFailed(Event):
    stage: str
    step: int
    epoch: int
    error_type: str
    message: str


# --------------------------------------------------------------------------- checkpoints


class CheckpointSaved(Event):
    name: str
    step: int  # optimizer steps contained = first step after resuming
    epoch: int
    uri: str
    sha256: str
    bytes: int
    machine_state: str
    cursor: dict[str, Any] = Field(default_factory=dict)
    final: bool = False


class CheckpointInvalidated(Event):
    checkpoint_seq: int
    uri: str
    reason: str


class CheckpointDeleted(Event):
    checkpoint_seq: int
    uri: str
    step: int


class DeterminismMismatch(Event):
    step: int
    metric: str
    logged: float
    replayed: float
    tolerance: float
    logged_seq: int


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
        DeterminismMismatch,
    )
}

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
# (type name, from version) -> function turning that version's payload into version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


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
    "AttemptInterrupted",
    "AttemptStarted",
    "CheckpointDeleted",
    "CheckpointInvalidated",
    "CheckpointSaved",
    "DeterminismMismatch",
    "Event",
    "RunCancelled",
    "RunCompleted",
    "RunCreated",
    "RunFailed",
    "RunResumed",
    "StageCompleted",
    "StageFailed",
    "StageStarted",
    "decode",
]
