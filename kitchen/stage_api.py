"""The stage API: everything a stage sees and returns, and nothing more.

A stage is ``fn(ctx) -> StageResult | Mapping | None``. It gets a :class:`StageContext` typed by
its workflow (``StageContext[MyConfig, MyResources]``: the recipe's config and the workflow's
resources dataclass), does its work through the ports in ``ctx.ports``, and says what happened
in a :class:`StageResult` — the workflow-neutral facts (an optimizer step applied, metrics
logged, artifacts recorded) that the engine records and folds without knowing the stage's name.

Stages import this module, ``kitchen.ports``, ``kitchen.types``, ``kitchen.renderers`` and their
own workflow's helpers; never the runner, the store, an adapter or the embedded assets (the
import contracts in ``pyproject.toml`` check it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from kitchen.engine.events import (
    Artifact,
    ArtifactDeleted,
    CheckpointDeleted,
    CheckpointSaved,
    Event,
    LineageRef,
)
from kitchen.engine.state import ArtifactRecord, Checkpoint, RunState
from kitchen.errors import ConfigError
from kitchen.paths import STATE_DIR
from kitchen.ports import BlobStore, DatasetStore, ServiceClient
from kitchen.spec import Stage

# Covariant: a stage written for the shared training config and resources also takes a
# workflow's subclasses of them (the context is read-only; resources mutate inside).
C = TypeVar("C", covariant=True)
R = TypeVar("R", covariant=True)


@dataclass(frozen=True)
class Ports:
    """The adapters of a run, built once by launch from the recipe's manifest.

    ``training`` is the factory (tinker's ``ServiceClient`` shape): it makes the training and
    sampling clients a workflow holds — a policy, a frozen reference, a teacher.
    """

    training: ServiceClient
    datasets: DatasetStore
    blobs: BlobStore


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint an attempt resumes from.

    ``path`` is its local folder (None for a remote checkpoint); :meth:`state_ref` is what a
    training port's ``load_state`` takes: a folder inside it, or the remote reference itself.
    """

    checkpoint: Checkpoint
    path: Path | None

    def state_ref(self, subfolder: str = STATE_DIR) -> str:
        if self.path is None:
            return self.checkpoint.uri
        return str(self.path / subfolder)


@dataclass(frozen=True)
class StageResult:
    """What a stage returns.

    - ``outputs``: small JSON-able values for the log (ids, counts); no key is special.
    - ``step``/``epoch``: where the run stands after the stage (default: unchanged).
    - ``optim_step``: the step whose optimizer step this stage applied; the fold keeps these
      exactly once across resumes.
    - ``metrics``: training metrics by step; ``eval_metrics``: held-out metrics at ``step``.
    - ``artifacts``: blobs this stage wrote whole; they are committed with the stage's end,
      before the next stage starts.
    - ``total_steps``: the planned number of steps, once the stage knows it.
    - ``events``: events to record after StageCompleted (a ``CheckpointSaved`` is committed
      only after everything before it).
    - ``after_commit``: side effects to run once this stage's events are committed (deleting
      blobs that retention dropped).
    """

    outputs: Mapping[str, Any] = field(default_factory=dict)
    step: int | None = None
    epoch: int | None = None
    optim_step: int | None = None
    metrics: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    eval_metrics: Mapping[str, float] = field(default_factory=dict)
    artifacts: tuple[Artifact, ...] = ()
    total_steps: int | None = None
    events: tuple[Event, ...] = ()
    after_commit: tuple[Callable[[], None], ...] = ()


@dataclass(frozen=True)
class ActivityResult:
    """The result of one activity (an environment step, a call to a judge): ``key`` names it
    uniquely in the run (``rl/step-3/group-1/env-0/turn-2``), ``kind`` says what it is,
    ``result`` is JSON-able (canonical JSON; no NaN). ``recovered``: the result came from the
    activity's unknown-outcome hook rather than from running it."""

    key: str
    kind: str
    result: Mapping[str, Any]
    step: int | None = None
    recovered: bool = False


@dataclass(frozen=True)
class RecordedActivity:
    """An activity as the log has it: ``status`` ``started`` (its start is on record and its
    result is not: the outcome is unknown) or ``completed`` (``result`` holds the result,
    read back from its blob when it was large)."""

    key: str
    kind: str
    step: int | None
    attempt: int
    status: str
    result: Mapping[str, Any] | None = None
    recovered: bool = False


class ActivityLog(Protocol):
    """Where a stage records activities, in Temporal's sense: work with an effect outside
    the run whose result must be on record before the stage goes on, so that a resumed run
    reads it back instead of doing the work again. Each call commits before it returns."""

    def get(self, key: str) -> RecordedActivity | None: ...

    def start(self, key: str, kind: str, step: int | None = None) -> None: ...

    def record(self, results: Sequence[ActivityResult]) -> None: ...


class NoActivityLog:
    """The activity log of a run on several processes, on every rank: any use is refused in
    one line (an effect must not happen once per process)."""

    def _refuse(self) -> ConfigError:
        return ConfigError(
            "activities (environment steps with effects) are recorded on one process only: "
            "run this without torchrun, or use an env whose steps have no effects"
        )

    def get(self, key: str) -> RecordedActivity | None:
        raise self._refuse()

    def start(self, key: str, kind: str, step: int | None = None) -> None:
        raise self._refuse()

    def record(self, results: Sequence[ActivityResult]) -> None:
        raise self._refuse()


@dataclass(frozen=True)
class StageContext(Generic[C, R]):
    """What a stage sees: the run, its config, the workflow's resources, the ports.

    ``lineage`` maps a role (``parent``, ``teacher``) to the resolved weights the run was
    started from or is taught by, with ``lineage_paths`` giving each one's local folder or
    model name to load. ``on_close`` registers a function the engine calls when the attempt
    ends, however it ends (a closed session, a stopped worker thread). ``activities`` is the
    run's activity log (:meth:`record_activity`, :meth:`start_activity`, :meth:`activity`):
    a stage never writes the log itself, but an activity's result is committed by the
    engine before ``record_activity`` returns.
    """

    run_id: str
    attempt: int
    config: C
    resources: R
    state: RunState
    stage: Stage
    home: Path
    run_dir: Path
    ports: Ports
    resume: ResumePoint | None
    interrupted: Callable[[], bool]
    on_close: Callable[[Callable[[], None]], None]
    lineage: Mapping[str, LineageRef] = field(default_factory=dict)
    lineage_paths: Mapping[str, str] = field(default_factory=dict)
    activities: ActivityLog = field(default_factory=NoActivityLog)

    @property
    def blobs(self) -> BlobStore:
        return self.ports.blobs

    def record_activity(self, *results: ActivityResult) -> None:
        """Put activity results on record; they are committed when this returns."""
        self.activities.record(results)

    def start_activity(self, key: str, kind: str, step: int | None = None) -> None:
        """Put on record that an activity which must not run twice is about to run."""
        self.activities.start(key, kind, step)

    def activity(self, key: str) -> RecordedActivity | None:
        """The activity ``key`` as the log has it (any attempt's), or None."""
        return self.activities.get(key)


StageFn = Callable[[StageContext[Any, Any]], "StageResult | Mapping[str, Any] | None"]


@dataclass(frozen=True)
class Preflight(Generic[C]):
    """What a workflow's pre-flight check sees, before the run exists: the settings, the
    ports, and the lineage launch resolved (as in :class:`StageContext`). The check raises
    ConfigError (one line) for settings that cannot train; it writes nothing."""

    config: C
    ports: Ports
    lineage: Mapping[str, LineageRef] = field(default_factory=dict)
    lineage_paths: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class View(Generic[C, R]):
    """What workflow conditions see when the runner decides the next edge; ``preempted``: the
    attempt was asked to give its node back (SIGTERM, SIGUSR1) and ends at the next step
    boundary, so a workflow that can checkpoint should do it now."""

    state: RunState
    config: C
    resources: R
    preempted: bool = False


__all__ = [
    "ActivityLog",
    "ActivityResult",
    "Artifact",
    "ArtifactDeleted",
    "ArtifactRecord",
    "Checkpoint",
    "CheckpointDeleted",
    "CheckpointSaved",
    "LineageRef",
    "NoActivityLog",
    "Ports",
    "Preflight",
    "RecordedActivity",
    "ResumePoint",
    "RunState",
    "Stage",
    "StageContext",
    "StageFn",
    "StageResult",
    "View",
]
