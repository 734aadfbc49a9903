"""Metrics where users already look (``loggers=tensorboard``), fed from the committed log.

A tracker is never told a metric by a stage: it reads the run's committed ``StageCompleted``
events, so a point it shows is on record, keyed by the step the log keys it by (``kitchen
show``'s step). Each point is written once across every attempt of a run:

- at the start of an attempt the tracker reads back what it already holds (for TensorBoard the
  event files in the run's log folder) and sends, from the fold of the whole log, every point
  it lacks: the steps a killed attempt committed and never sent are sent then;
- after each stage it sends the points of the events committed since;
- a step re-executed by a resumed attempt is already there and is not sent again: **the
  first committed value stands**. The runner compares the re-executed value with it
  (docs/guarantees.md: byte for byte, or within the relative tolerance after a float-moving
  setting changed) and records a ``DeterminismMismatch`` where they differ, so the tracker
  agrees with ``kitchen show`` up to that check, and a mismatch is on record where it doesn't.

A tracker that fails (a full disk under the log folder) never stops training: it is told
once on stderr and stops for the attempt; the next attempt, or ``kitchen track``, sends the
points it missed. ``kitchen track RUN --to tensorboard`` back-fills any run from its log.

The tracker libraries are optional extras, imported only when a run names them.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from kitchen.engine import events as ev
from kitchen.engine.runner import Reporter
from kitchen.engine.state import Recorded, RunState, fold
from kitchen.errors import ConfigError
from kitchen.ports import EventLog
from kitchen.spec import Stage, Workflow
from kitchen.stage_api import StageResult

LOGGERS = ("tensorboard",)
TENSORBOARD_DIR = "tensorboard"  # the log folder under the run's folder
EXTRA = {"tensorboard": "tensorboard"}  # logger -> the package (and the extra) it needs

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


class Sink(Protocol):
    def has(self, tag: str, step: int) -> bool: ...

    def write(self, batch: list[Point]) -> None: ...

    def close(self) -> None: ...


class TensorBoardSink:
    """Scalars in TensorBoard event files under ``<run folder>/tensorboard``: one file per
    writer (attempt), and each (tag, step) in one of them only."""

    def __init__(self, run_dir: Path) -> None:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

        self.folder = run_dir / TENSORBOARD_DIR
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

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def open_sink(name: str, run_dir: Path) -> Sink:
    if name == "tensorboard":
        return TensorBoardSink(run_dir)
    raise ConfigError(f"unknown logger {name!r}; known: {', '.join(LOGGERS)}")


def send(sink: Sink, batch: Iterable[Point]) -> int:
    """Write the points the sink lacks; how many were written."""
    fresh = [p for p in batch if not sink.has(p[0], p[1])]
    sink.write(fresh)
    return len(fresh)


def _fold_all(store: EventLog, run_id: str) -> RunState:
    rows = store.read(run_id)
    return fold(
        run_id,
        [
            Recorded(r.seq, r.recorded_at, ev.decode(r.type, r.schema_version, r.payload))
            for r in rows
        ],
    )


def backfill(store: EventLog, run_id: str, run_dir: Path, name: str) -> tuple[int, int]:
    """``kitchen track``: send every point of the run's effective history that the tracker
    lacks; (points written, points the run has)."""
    check_installed([name])
    sink = open_sink(name, run_dir)
    try:
        every = state_points(_fold_all(store, run_id))
        return send(sink, every), len(every)
    finally:
        sink.close()


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
        self.last_seq = 0

    def created(self, state: RunState) -> None:
        self.inner.created(state)

    def started(self, state: RunState, workflow: Workflow) -> None:
        self.inner.started(state, workflow)
        for name in self.loggers:
            self._guarded(name, lambda name=name: self._open(name))
        if self.sinks:
            whole = _fold_all(self.store, self.run_id)
            self.last_seq = whole.last_seq
            for name in list(self.sinks):
                self._guarded(name, lambda name=name: send(self.sinks[name], state_points(whole)))

    def _open(self, name: str) -> None:
        self.sinks[name] = open_sink(name, self.run_dir)

    def stage_done(self, stage: Stage, result: StageResult, state: RunState) -> None:
        self.inner.stage_done(stage, result, state)
        self._feed()

    def fault(self, error: Any, recorded: bool) -> None:
        self.inner.fault(error, recorded)

    def finished(self, state: RunState, code: int) -> None:
        self._feed()
        for name in list(self.sinks):
            self._guarded(name, self.sinks[name].close)
        self.sinks.clear()
        self.inner.finished(state, code)

    def _feed(self) -> None:
        if not self.sinks:
            return
        batch: list[Point] = []
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
            self.sinks.pop(name, None)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(
                f"kitchen: logger {name} stopped for this attempt ({first}); training goes on, "
                f"and the points it missed are sent by the next attempt or `kitchen track "
                f"{self.run_id} --to {name}`",
                file=sys.stderr,
                flush=True,
            )


def feeding(
    reporter: Reporter, store: EventLog, run_id: str, run_dir: Path, loggers: list[str]
) -> Reporter:
    """``reporter``, feeding ``loggers`` too when the run names any."""
    if not loggers:
        return reporter
    return Feeding(reporter, store, run_id, run_dir, list(loggers))
