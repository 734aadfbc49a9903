"""Metrics where users already look (``loggers=mlflow,tensorboard,wandb``), fed from the
committed log.

A tracker is never told a metric by a stage: it reads the run's committed ``StageCompleted``
events, so a point it shows is on record, keyed by the step the log keys it by (``kitchen
show``'s step, the optimizer step). Each point is written once across every attempt of a run:

- at the start of an attempt the tracker reads back what it already holds (TensorBoard: the
  event files in the run's log folder; MLflow: the run's metric histories on the server; W&B:
  the run's files) and sends, from the fold of the whole log, every point it lacks: the steps
  a killed attempt committed and never sent are sent then;
- after each stage it sends the points of the events committed since;
- a step re-executed by a resumed attempt is already there and is not sent again: **the
  first committed value stands**. The runner compares the re-executed value with it
  (docs/guarantees.md: byte for byte, or within the relative tolerance after a float-moving
  setting changed) and records a ``DeterminismMismatch`` where they differ, so the tracker
  agrees with ``kitchen show`` up to that check, and a mismatch is on record where it doesn't.

Every attempt continues the same tracker run: MLflow's run id is put on record
(``TrackerRunOpened``) the first time, W&B's run is kitchen's run id, resumed.

A tracker that fails (a full disk under the log folder, a tracking server that is down)
never stops training: it is told once on stderr and stops for the attempt; the next attempt,
or ``kitchen track``, sends the points it missed, and the end of the attempt says how many
it missed. ``kitchen track RUN --to NAME`` back-fills any run from its log.

The tracker libraries are optional extras, imported only when a run names them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kitchen.engine import events as ev
from kitchen.engine.runner import Reporter
from kitchen.engine.state import Recorded, RunState, fold
from kitchen.errors import ConfigError, KitchenError, ServiceUnavailable
from kitchen.ports import EventLog
from kitchen.spec import Stage, Workflow
from kitchen.stage_api import StageResult

LOGGERS = ("mlflow", "tensorboard", "wandb")
TENSORBOARD_DIR = "tensorboard"  # the log folder under the run's folder
# logger -> the module it needs, and the extra that installs it
EXTRA = {"mlflow": "mlflow", "tensorboard": "tensorboard", "wandb": "wandb"}

Point = tuple[str, int, float]  # (tag, step, value)


def check_installed(loggers: Iterable[str]) -> None:
    """Each logger's library is installed, or one line saying how to install it."""
    for name in loggers:
        if importlib.util.find_spec(EXTRA[name]) is None:
            raise ConfigError(
                f"loggers={name} needs the {EXTRA[name]} package: pip install "
                f"'kitchen-posttrain[{name}]', or leave {name} out of loggers"
            )


def points(metrics: Mapping[Any, Mapping[str, Any]], kind: str) -> list[Point]:
    """``{step: {name: value}}`` as (``kind/name``, step, value) points; flags and texts are
    not curves and are left out."""
    out = []
    for step, values in sorted(metrics.items(), key=lambda item: int(item[0])):
        for name, value in sorted(values.items()):
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            out.append((f"{kind}/{name}", int(step), float(value)))
    return out


def state_points(state: RunState) -> list[Point]:
    """Every point of a run's effective history (a re-executed step: its last execution)."""
    return points(state.step_metrics, "train") + points(state.eval_metrics, "eval")


@dataclass
class History:
    """What a tracker is opened with: the fold of the run's whole log, the tracker runs its
    log names (``TrackerRunOpened``: tracker -> its run id), and how to put one on record
    (None outside an attempt)."""

    state: RunState
    run_dir: Path
    opened: dict[str, str] = field(default_factory=dict)
    record: Callable[[ev.Event], object] | None = None


class Sink(Protocol):
    where: str  # where the points go, for messages

    def has(self, tag: str, step: int) -> bool: ...

    def write(self, batch: list[Point]) -> None: ...

    def finish(self, state: RunState, files: Mapping[str, Path]) -> None:
        """The run ended (``state``): its status, and ``files`` (name -> file or folder)
        where the tracker keeps artifacts."""

    def close(self) -> None: ...


class TensorBoardSink:
    """Scalars in TensorBoard event files under ``<run folder>/tensorboard``: one file per
    writer (attempt), and each (tag, step) in one of them only."""

    def __init__(self, history: History) -> None:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

        self.folder = history.run_dir / TENSORBOARD_DIR
        self.where = str(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.written: set[tuple[str, int]] = set()
        for path in sorted(self.folder.glob("events.out.tfevents.*")):
            for event in EventFileLoader(str(path)).Load():
                for value in event.summary.value:
                    self.written.add((value.tag, int(event.step)))
        self.writer: Any = None

    def has(self, tag: str, step: int) -> bool:
        return (tag, step) in self.written

    def write(self, batch: list[Point]) -> None:
        if not batch:
            return
        from tensorboard.compat.proto import event_pb2, summary_pb2

        if self.writer is None:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter

            self.writer = EventFileWriter(str(self.folder))
        for tag, step, value in batch:
            summary = summary_pb2.Summary(
                value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]
            )
            self.writer.add_event(event_pb2.Event(step=step, summary=summary))
            self.written.add((tag, step))
        self.writer.flush()

    def finish(self, state: RunState, files: Mapping[str, Path]) -> None:
        """TensorBoard keeps scalars only."""

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def open_sink(name: str, history: History) -> Sink:
    if name == "tensorboard":
        return TensorBoardSink(history)
    if name == "mlflow":
        from kitchen.engine.tracker_runs import MlflowSink

        return MlflowSink(history)
    if name == "wandb":
        from kitchen.engine.tracker_runs import WandbSink

        return WandbSink(history)
    raise ConfigError(f"unknown logger {name!r}; known: {', '.join(LOGGERS)}")


def send(sink: Sink, batch: Iterable[Point]) -> int:
    """Write the points the sink lacks; how many were written."""
    fresh = [p for p in batch if not sink.has(p[0], p[1])]
    sink.write(fresh)
    return len(fresh)


def read_history(store: EventLog, run_id: str, run_dir: Path) -> History:
    """The fold of the run's whole log, and the tracker runs it names."""
    rows = store.read(run_id)
    records = [
        Recorded(r.seq, r.recorded_at, ev.decode(r.type, r.schema_version, r.payload)) for r in rows
    ]
    opened = {
        r.event.tracker: r.event.tracker_run_id
        for r in records
        if isinstance(r.event, ev.TrackerRunOpened)
    }
    return History(fold(run_id, records), run_dir, opened)


ReportWriter = Callable[[EventLog, str, Path], Path]
report_writer: ReportWriter | None = None
"""Writes a run's HTML report (``kitchen report``'s page) to a path: set by the CLI and the
Python API, which own that page, so that a run that ends hands it to MLflow and W&B with its
other artifacts. Unset, the report is left to ``kitchen track``."""


def run_files(state: RunState, run_dir: Path) -> dict[str, Path]:
    """The files a tracker keeps as artifacts of a completed run: its final adapter and its
    resolved config (and whatever the caller adds, such as the HTML report)."""
    files = {"config.json": run_dir / "config.json", "final": run_dir / "final"}
    if state.status != "completed":
        files.pop("final")
    return {name: path for name, path in files.items() if path.exists()}


def backfill(
    store: EventLog,
    run_id: str,
    run_dir: Path,
    name: str,
    extra_files: Mapping[str, Path] | None = None,
) -> tuple[int, int, str]:
    """``kitchen track``: send every point of the run's effective history that the tracker
    lacks, and, for a run that ended, its artifacts; (points written, points the run has,
    where they went)."""
    check_installed([name])
    history = read_history(store, run_id, run_dir)
    try:
        sink = open_sink(name, history)
        try:
            every = state_points(history.state)
            written = send(sink, every)
            if history.state.terminal:
                files = {**run_files(history.state, run_dir), **(extra_files or {})}
                sink.finish(history.state, files)
            return written, len(every), sink.where
        finally:
            sink.close()
    except KitchenError:
        raise
    except Exception as exc:  # the tracker's own error, in its own words: one line of it
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ServiceUnavailable(
            f"{name} failed: {first[:300]}; what it holds stays, and running this again when it "
            "answers sends what it lacks"
        ) from None


class Feeding(Reporter):
    """The attempt's reporter, with the run's trackers fed from the log after each stage."""

    def __init__(
        self, inner: Reporter, store: EventLog, run_id: str, run_dir: Path, loggers: list[str]
    ) -> None:
        self.inner = inner
        self.store = store
        self.run_id = run_id
        self.run_dir = run_dir
        self.loggers = loggers
        self.sinks: dict[str, Sink] = {}
        self.stopped: dict[str, int] = {}  # tracker -> the seq after which it may lack points
        self.last_seq = 0
        self.batch_from = 0  # the seq the points being sent were committed after
        # how to put an event on record in this attempt (the runner's unit of work), set by
        # whoever builds the runner; a tracker run opened before it is recorded after a stage
        self.record: Callable[[ev.Event], object] | None = None
        self.pending: list[ev.Event] = []

    def created(self, state: RunState) -> None:
        self.inner.created(state)

    def started(self, state: RunState, workflow: Workflow) -> None:
        self.inner.started(state, workflow)
        self.open()

    def open(self) -> None:
        """Open the trackers and send every point of the log they lack."""
        history = read_history(self.store, self.run_id, self.run_dir)
        history.record = self.pending.append
        for name in self.loggers:
            self._guarded(name, lambda name=name: self._open(name, history))
        if self.sinks:
            self.last_seq = history.state.last_seq
            every = state_points(history.state)
            for name in list(self.sinks):
                self._guarded(name, lambda name=name: send(self.sinks[name], every))

    def _open(self, name: str, history: History) -> None:
        self.sinks[name] = open_sink(name, history)

    def stage_done(self, stage: Stage, result: StageResult, state: RunState) -> None:
        self.inner.stage_done(stage, result, state)
        self.feed()

    def feed(self) -> None:
        """Put on record what opening a tracker run asked to, then send the points of the
        events committed since the last call."""
        if self.pending and self.record is not None:
            for event in self.pending:
                self.record(event)
            self.pending.clear()
        self._feed()

    def fault(self, error: Any, recorded: bool) -> None:
        self.inner.fault(error, recorded)

    def finished(self, state: RunState, code: int) -> None:
        self.close(state)
        self.inner.finished(state, code)

    def close(self, state: RunState | None = None) -> None:
        """Send what is left and close the trackers; for a run that ended (``state``), its
        artifacts and status first."""
        self._feed()
        if state is not None and state.terminal and self.sinks:
            files = run_files(state, self.run_dir)
            with tempfile.TemporaryDirectory() as scratch:
                report = self._report(Path(scratch) / "report.html")
                if report is not None:
                    files["report.html"] = report
                for name in list(self.sinks):
                    self._guarded(name, lambda name=name: self.sinks[name].finish(state, files))
        for name in list(self.sinks):
            self._guarded(name, self.sinks[name].close)
        self.sinks.clear()
        self._report_gaps()

    def _report(self, out: Path) -> Path | None:
        """The run's HTML report for the trackers that keep artifacts, or None."""
        if report_writer is None or not set(self.sinks) - {"tensorboard"}:
            return None
        try:
            return report_writer(self.store, self.run_id, out)
        except Exception as exc:  # the report is an extra: never the run's failure
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(
                f"kitchen: the run's HTML report was not written for its trackers "
                f"({first[:300]}); `kitchen track {self.run_id} --to NAME` sends it",
                file=sys.stderr,
                flush=True,
            )
            return None

    def _feed(self) -> None:
        if not self.sinks:
            return
        batch: list[Point] = []
        self.batch_from = self.last_seq
        for row in self.store.read(self.run_id, after_seq=self.last_seq):
            self.last_seq = row.seq
            if row.type != "StageCompleted":
                continue
            done = ev.decode(row.type, row.schema_version, row.payload)
            assert isinstance(done, ev.StageCompleted)
            batch += points(done.metrics, "train")
            if done.eval_metrics:
                batch += points({done.step: done.eval_metrics}, "eval")
        for name in list(self.sinks):
            self._guarded(name, lambda name=name: send(self.sinks[name], batch))

    def _guarded(self, name: str, action: Any) -> None:
        """``action()``; a failure stops this tracker for the attempt, never the training."""
        try:
            action()
        except Exception as exc:
            sink = self.sinks.pop(name, None)
            if sink is not None:
                with contextlib.suppress(Exception):  # one that is down may fail to close too
                    sink.close()
            self.stopped.setdefault(name, self.batch_from)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(
                f"kitchen: logger {name} stopped for this attempt ({first[:300]}); training goes "
                f"on, and the points it missed are sent by the next attempt or `kitchen track "
                f"{self.run_id} --to {name}`",
                file=sys.stderr,
                flush=True,
            )

    def _report_gaps(self) -> None:
        """The steps a stopped tracker may lack at the end of the attempt, on stderr."""
        for name, after in self.stopped.items():
            steps = sorted(
                {
                    step
                    for row in self.store.read(self.run_id, after_seq=after)
                    if row.type == "StageCompleted"
                    for step in _steps(ev.decode(row.type, row.schema_version, row.payload))
                }
            )
            if steps:
                print(
                    f"kitchen: logger {name} lacks the points of steps {steps[0]}..{steps[-1]} "
                    f"(if it was down since it stopped); `kitchen track {self.run_id} --to "
                    f"{name}` sends them",
                    file=sys.stderr,
                    flush=True,
                )


def _steps(done: ev.Event) -> list[int]:
    assert isinstance(done, ev.StageCompleted)
    return [int(s) for s in done.metrics] + ([done.step] if done.eval_metrics else [])


def feeding(
    reporter: Reporter, store: EventLog, run_id: str, run_dir: Path, loggers: list[str]
) -> Reporter:
    """``reporter``, feeding ``loggers`` too when the run names any."""
    if not loggers:
        return reporter
    return Feeding(reporter, store, run_id, run_dir, list(loggers))
