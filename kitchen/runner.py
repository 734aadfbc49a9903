"""The runner: drives one attempt of a run through its state machine.

Per transition: choose the next edge → ``StageStarted`` → the stage inside a span →
``StageCompleted`` (or ``StageFailed`` + ``RunFailed``) → the machine takes the edge. Events are
recorded into a unit of work and folded into the in-memory ``RunState`` at once; they reach the
database by group commit:

- every stage that is not ``hot`` commits what came before it together with its own
  ``StageStarted`` before it runs, and its other events when it ends (set-up, checkpoints,
  evaluation: anything with side effects that cannot be redone);
- the ``hot`` per-step stages share one commit per step, made at the top of the step loop;
- the end of an attempt (completed, failed, interrupted, cancelled) always commits.

A crash therefore loses at most the uncommitted events of the step in flight, which resume
re-executes anyway. Stages never touch the store or the machine: they get a :class:`StageContext`
and return outputs (and, for checkpoints, the ``CheckpointSaved`` event to record after their
blob is durable).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from kitchen import events as ev
from kitchen import faults
from kitchen.errors import (
    ConcurrencyConflict,
    ConfigError,
    IllegalTransition,
    KitchenError,
    LeaseHeld,
    NotFound,
    StoreUnavailable,
)
from kitchen.machine import RunMachine
from kitchen.ports import BlobRef
from kitchen.stage_api import Ports, ResumePoint, StageContext, StageFn, StageResult, View
from kitchen.state import Checkpoint, Recorded, RunState, advance, fold
from kitchen.workflow import FINISH_TRIGGER, INITIAL, Loop, Node, Stage, Workflow

EXIT_OK, EXIT_FAILED, EXIT_CONFLICT, EXIT_INTERRUPTED = 0, 1, 3, 130


@dataclass(frozen=True)
class Identity:
    """What a resume compares with RunCreated: a difference is recorded, some are refused.

    ``created_config_hash`` is the hash of the run's recorded config rebuilt by today's recipe
    (keys added since take their defaults), so only a change the user asked for counts as a
    changed config; ``lineage_changes`` are parent/teacher weights found changed (accepted
    only with ``--force``).
    """

    config_hash: str
    data_fingerprint: str | None
    versions: Mapping[str, str]
    torch_threads: int | None
    created_config_hash: str | None = None
    lineage_changes: tuple[str, ...] = ()


class Reporter:
    """Progress hooks for the CLI; the default reports nothing."""

    def created(self, state: RunState) -> None:
        """The run's first events are committed: it exists now."""

    def started(self, state: RunState, workflow: Workflow) -> None: ...

    def stage_done(self, stage: Stage, result: StageResult, state: RunState) -> None: ...

    def finished(self, state: RunState, code: int) -> None: ...


def _loop_heads(nodes: tuple[Node, ...]) -> set[str]:
    heads: set[str] = set()
    for n in nodes:
        if isinstance(n, Loop):
            first = n.body[0]
            assert isinstance(first, Stage)
            heads.add(first.slot)
            heads |= _loop_heads(n.body)
    return heads


class Runner:
    def __init__(
        self,
        *,
        store: Any,
        workflow: Workflow,
        run_id: str,
        config: Any,
        home: Path,
        ports: Ports,
        stages: Mapping[str, StageFn] | None = None,
        lineage: Mapping[str, ev.LineageRef] | None = None,
        lineage_paths: Mapping[str, str] | None = None,
        telemetry: Any = None,
        reporter: Reporter | None = None,
        lease_ttl_s: float = 60.0,
        check_every_s: float = 5.0,
        determinism_tolerance: float = 1e-6,
        handle_signals: bool = True,
        on_created: Callable[[Path], None] | None = None,
    ) -> None:
        if stages is None:
            if workflow.code is None:
                raise ConfigError(f"workflow {workflow.name!r} has no stage code")
            stages = workflow.code()
        missing = {s.name for s in workflow.stages()} - set(stages)
        if missing:
            raise ConfigError(
                f"workflow {workflow.name!r} has stages without code: {sorted(missing)}"
            )
        self.store = store
        self.workflow = workflow
        self.table = workflow.compile()
        self.stages = stages
        self.run_id = run_id
        self.config = config
        self.home = Path(home)
        self.ports = ports
        self.blobs = ports.blobs
        self.lineage = dict(lineage or {})
        self.lineage_paths = dict(lineage_paths or {})
        self.telemetry = telemetry
        self.reporter = reporter or Reporter()
        self.lease_ttl_s = lease_ttl_s
        self.check_every_s = check_every_s
        self.tolerance = determinism_tolerance
        self.handle_signals = handle_signals
        self.on_created = on_created
        self.run_dir = self.home / run_id
        self.resources = workflow.resources()
        self._closers: list[Callable[[], None]] = [ports.training.close]
        self.last_error: BaseException | None = None
        self.state = RunState(run_id=run_id)
        self._owned: set[str] = set()  # dict fields of self.state that grow in place (advance)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._committed_seq = 0
        self._buffer: list[ev.Event] = []
        self._interrupt: str | None = None
        self._last_check = 0.0
        self._heads = _loop_heads(workflow.body)
        self._resume: ResumePoint | None = None
        self._span: Any = None

    # ------------------------------------------------------------------ unit of work

    def record(self, event: ev.Event) -> int:
        """Add an event to the unit of work and fold it; returns its seq."""
        seq = self.state.last_seq + 1
        self._buffer.append(event)
        self.state = advance(self.state, Recorded(seq, None, event), self._owned)
        return seq

    def flush(self) -> None:
        if not self._buffer:
            return
        from kitchen.store import NewEvent

        batch = [NewEvent(e.type_name(), e.payload(), e.schema_version) for e in self._buffer]
        faults.point("flush:before")
        delay = 0.5
        for attempt in range(8):
            try:
                self.store.append(self.run_id, batch, expected_seq=self._committed_seq)
                break
            except StoreUnavailable:
                if attempt == 7:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
        self._committed_seq += len(batch)
        self._buffer.clear()
        faults.point("flush:after")

    # ------------------------------------------------------------------ entry points

    def start(self, created: ev.RunCreated) -> int:
        if self.store.run_exists(self.run_id):
            raise self._exists_error()
        self.store.acquire_lease(
            self.run_id,
            self.holder,
            host=socket.gethostname(),
            pid=os.getpid(),
            attempt=1,
            ttl_s=self.lease_ttl_s,
        )
        try:
            with self._attempt_span(1, None) as span:
                self.record(created)
                self.record(self._attempt_started(1, span, None))
                try:
                    self.flush()
                except ConcurrencyConflict:
                    raise self._exists_error() from None
                self.run_dir.mkdir(parents=True, exist_ok=True)
                if self.on_created is not None:
                    self.on_created(self.run_dir)
                self.reporter.created(self.state)
                return self._drive(RunMachine(self.table, self.workflow.conditions, INITIAL))
        finally:
            self._release()

    def _exists_error(self) -> ConfigError:
        return ConfigError(
            f"run {self.run_id!r} already exists; continue it with `kitchen resume {self.run_id}`"
        )

    def resume(self, identity: Identity, *, force: bool = False) -> int:
        self._refold()
        differences, refused = self._compare(identity)
        if refused and not force:
            raise ConfigError(
                f"run {self.run_id!r} was created with a different {' and '.join(refused)}; "
                "resume with --force to continue anyway"
            )
        self.store.acquire_lease(
            self.run_id,
            self.holder,
            host=socket.gethostname(),
            pid=os.getpid(),
            attempt=self.state.attempt + 1,
            ttl_s=self.lease_ttl_s,
        )
        try:
            self._refold()  # the lease is ours now: nobody appends behind our back any more
            attempt = self.state.attempt + 1
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt, bad = self._newest_valid_checkpoint()
            with self._attempt_span(attempt, self._previous_span()) as span:
                self.record(self._attempt_started(attempt, span, ckpt.seq if ckpt else None))
                for b in bad:
                    self.record(
                        ev.CheckpointInvalidated(
                            checkpoint_seq=b.seq,
                            uri=b.uri,
                            reason="blob missing or sha256 mismatch",
                        )
                    )
                self.record(
                    ev.RunResumed(
                        attempt=attempt,
                        from_checkpoint_seq=ckpt.seq if ckpt else None,
                        from_step=ckpt.step if ckpt else 0,
                        machine_state=ckpt.machine_state if ckpt else INITIAL,
                        cursor=dict(ckpt.cursor) if ckpt else {},
                        config_hash=identity.config_hash,
                        data_fingerprint=identity.data_fingerprint,
                        versions=dict(identity.versions),
                        torch_threads=identity.torch_threads,
                        differences=differences,
                        forced=bool(refused) and force,
                    )
                )
                try:
                    self.flush()
                except ConcurrencyConflict:
                    raise LeaseHeld(
                        f"run {self.run_id!r} is being resumed by another worker"
                    ) from None
                initial = INITIAL
                if ckpt is not None:
                    local = ckpt.location == "local"
                    path = self.blobs.local_path(ckpt.uri) if local else None
                    self._resume = ResumePoint(ckpt, path)
                    initial = ckpt.machine_state
                machine = RunMachine(self.table, self.workflow.conditions, initial)
                return self._drive(machine, rebuild=ckpt is not None)
        finally:
            self._release()

    def _refold(self) -> None:
        self.state = fold(self.run_id, self._load())
        self._owned = set()
        self._committed_seq = self.state.last_seq
        if self.state.terminal:
            raise ConfigError(
                f"run {self.run_id!r} is {self.state.status}; there is nothing to resume"
            )

    # ------------------------------------------------------------------ resume helpers

    def _load(self) -> list[Recorded]:
        rows = self.store.read(self.run_id)
        if not rows:
            raise NotFound(
                f"no run {self.run_id!r} in {self.store.url_for_display}; see `kitchen runs`"
            )
        return [
            Recorded(r.seq, r.recorded_at, ev.decode(r.type, r.schema_version, r.payload))
            for r in rows
        ]

    def _compare(self, identity: Identity) -> tuple[list[str], list[str]]:
        s = self.state
        diffs: list[str] = []
        refused: list[str] = []
        created = identity.created_config_hash or s.config_hash
        if identity.config_hash != created:
            diffs.append(f"config_hash {s.config_hash} -> {identity.config_hash}")
            refused.append("config")
        if identity.lineage_changes:
            diffs.extend(identity.lineage_changes)
            refused.append("lineage weights")
        if identity.data_fingerprint != s.data_fingerprint:
            diffs.append(f"data_fingerprint {s.data_fingerprint} -> {identity.data_fingerprint}")
            refused.append("dataset")
        for lib, version in sorted(identity.versions.items()):
            if s.versions.get(lib) != version:
                diffs.append(f"{lib} {s.versions.get(lib)} -> {version}")
        created_threads = s.versions.get("torch_threads")
        if identity.torch_threads is not None and created_threads not in (
            None,
            str(identity.torch_threads),
        ):
            diffs.append(f"torch_threads {created_threads} -> {identity.torch_threads}")
        return diffs, refused

    def _newest_valid_checkpoint(self) -> tuple[Checkpoint | None, list[Checkpoint]]:
        """The newest live checkpoint that verifies, and the newer ones that did not.

        A local checkpoint is verified by re-hashing its blob; a remote one by asking the
        training service whether the reference still holds the recorded state.
        """
        bad: list[Checkpoint] = []
        for ckpt in reversed(self.state.live_checkpoints()):
            if ckpt.location == "remote":
                ok = self.ports.training.verify_checkpoint(ckpt.uri, ckpt.sha256)
            else:
                ok = self.blobs.verify(BlobRef(ckpt.uri, ckpt.sha256, ckpt.bytes))
            if ok:
                return ckpt, bad
            bad.append(ckpt)
        return None, bad

    def _previous_span(self) -> tuple[str, str] | None:
        for a in reversed(self.state.attempts):
            if a.trace_id and a.span_id:
                return a.trace_id, a.span_id
        return None

    def _rebuild(self, machine: RunMachine) -> int | None:
        """Re-run the set-up stages (as events of this attempt) without moving the machine.

        Set-up can take minutes (loading a model), so signals, cancellation and the lease are
        honoured between its stages as between any others.
        """
        for stage in self.workflow.stages():
            if stage.option("setup"):
                code = self._boundary(machine)
                if code is None:
                    code = self._run_stage(stage, machine.state, machine.state, machine)
                if code is not None:
                    return code
        return None

    # ------------------------------------------------------------------ the loop

    def _attempt_started(
        self, attempt: int, span: Any, resumed_from: int | None
    ) -> ev.AttemptStarted:
        trace_id, span_id = self.telemetry.ids(span) if self.telemetry and span else (None, None)
        # Only when torch is already in use: importing it here would cost seconds per attempt.
        torch = sys.modules.get("torch")
        threads: int | None = int(torch.get_num_threads()) if torch is not None else None
        return ev.AttemptStarted(
            attempt=attempt,
            worker=self.holder,
            host=socket.gethostname(),
            pid=os.getpid(),
            trace_id=trace_id,
            span_id=span_id,
            resumed_from=resumed_from,
            torch_threads=threads,
        )

    def _attempt_span(self, attempt: int, previous: tuple[str, str] | None) -> Any:
        if self.telemetry is None:
            from contextlib import nullcontext

            return nullcontext(None)
        return self.telemetry.attempt_span(self.run_id, attempt, previous)

    def _drive(self, machine: RunMachine, *, rebuild: bool = False) -> int:
        self._install_signals()
        self.reporter.started(self.state, self.workflow)
        try:
            code = self._rebuild(machine) if rebuild else None
            if code is not None:
                return code
            while True:
                code = self._boundary(machine)
                if code is not None:
                    return code
                view = View(self.state, self.config, self.resources)
                row = machine.choose(view)
                if row is None:
                    raise IllegalTransition(
                        f"no transition of workflow {self.workflow.name!r} applies in state "
                        f"{machine.state!r}"
                    )
                if row.trigger == FINISH_TRIGGER:
                    return self._complete(machine, row)
                stage = self.workflow.stage_at(row.dest)
                code = self._run_stage(stage, row.source, row.dest, machine, row)
                if code is not None:
                    return code
        finally:
            self._restore_signals()
            self._close_resources()

    def _run_stage(
        self, stage: Stage, source: str, dest: str, machine: RunMachine | None, row: Any = None
    ) -> int | None:
        if stage.hot and dest in self._heads:
            self.flush()  # step boundary: the previous step's events go in one commit
        s = self.state
        seq = self.record(
            ev.StageStarted(
                stage=stage.name,
                source=source,
                dest=dest,
                step=s.step,
                epoch=s.epoch,
                attempt=s.attempt,
            )
        )
        if not stage.hot:
            self.flush()  # a stage with side effects is on record before it begins them
        faults.point(f"stage:{stage.name}:before")
        ctx = self._context(stage, s)
        span = self._stage_span(stage, s, seq)
        t0 = time.perf_counter()
        try:
            result = self.stages[stage.name](ctx)
        except Exception as exc:
            if span is not None:
                self.telemetry.end_with_error(span, exc)
            return self._fail(stage, exc, machine)
        except BaseException as exc:  # stopped at once (a second signal): still show where
            if span is not None:
                self.telemetry.end_with_error(span, exc)
            raise
        if span is not None:
            span.end()
        res = result if isinstance(result, StageResult) else StageResult(dict(result or {}))
        self.record(self._completed(stage, dest, res, time.perf_counter() - t0))
        if res.metrics:
            self._after_step_metrics(res.metrics)
        for extra in res.events:
            if isinstance(extra, ev.CheckpointSaved):
                self.flush()  # the stage's own events first; then the checkpoint record
            self.record(extra)
        if machine is not None and row is not None:
            machine.take(row)
        faults.point(f"stage:{stage.name}:after")
        if not stage.hot or res.after_commit or res.artifacts:
            self.flush()  # an artifact is on record before anything is built on it
        for effect in res.after_commit:
            effect()
        self.reporter.stage_done(stage, res, self.state)
        return None

    def _context(self, stage: Stage, s: RunState) -> StageContext[Any, Any]:
        return StageContext(
            run_id=self.run_id,
            attempt=s.attempt,
            config=self.config,
            resources=self.resources,
            state=s,
            stage=stage,
            home=self.home,
            run_dir=self.run_dir,
            ports=self.ports,
            resume=self._resume,
            interrupted=lambda: self._interrupt is not None,
            on_close=self._closers.append,
            lineage=self.lineage,
            lineage_paths=self.lineage_paths,
        )

    def _stage_span(self, stage: Stage, s: RunState, seq: int) -> Any:
        if self.telemetry is None:
            return None
        return self.telemetry.stage_span(
            stage.name,
            {
                "kitchen.run_id": self.run_id,
                "kitchen.attempt": s.attempt,
                "kitchen.stage": stage.name,
                "kitchen.step": s.step,
                "kitchen.epoch": s.epoch,
                "kitchen.event_seq": seq,
            },
        )

    def _completed(
        self, stage: Stage, dest: str, res: StageResult, duration_s: float
    ) -> ev.StageCompleted:
        return ev.StageCompleted(
            stage=stage.name,
            dest=dest,
            step=self.state.step if res.step is None else res.step,
            epoch=self.state.epoch if res.epoch is None else res.epoch,
            outputs=dict(res.outputs),
            duration_s=duration_s,
            optim_step=res.optim_step,
            metrics={str(k): dict(v) for k, v in res.metrics.items()},
            eval_metrics=dict(res.eval_metrics),
            artifacts=list(res.artifacts),
            total_steps=res.total_steps,
        )

    def _after_step_metrics(self, steps: Mapping[int, Mapping[str, Any]]) -> None:
        """Telemetry, and the determinism check of re-executed steps on the workflow's metric."""
        metric = self.workflow.step_metric
        for key, metrics in steps.items():
            step = int(key)
            if self.telemetry is not None:
                self.telemetry.record_step(metrics, metric, self.workflow.progress_metrics)
            old = self.state.superseded_metrics.get(step)
            if old is None or metric is None or metric not in metrics:
                continue
            logged = float(old[1].get(metric, math.nan))
            replayed = float(metrics[metric])
            if not abs(logged - replayed) <= self.tolerance:
                self.record(
                    ev.DeterminismMismatch(
                        step=step,
                        metric=metric,
                        logged=logged,
                        replayed=replayed,
                        tolerance=self.tolerance,
                        logged_seq=old[0],
                    )
                )

    # ------------------------------------------------------------------ endings

    def _complete(self, machine: RunMachine, row: Any) -> int:
        metrics = dict(self.state.last_metrics())
        latest_eval = self.state.eval_metrics.get(max(self.state.eval_metrics, default=-1), {})
        metrics.update({k: v for k, v in latest_eval.items() if isinstance(v, int | float)})
        clean = {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, int | float) and math.isfinite(v)
        }
        final = self.state.latest_artifact("final_weights")
        self.record(
            ev.RunCompleted(
                step=self.state.step,
                metrics=clean,
                adapter_uri=final.uri if final is not None else None,
            )
        )
        machine.take(row)
        self.flush()
        self.reporter.finished(self.state, EXIT_OK)
        return EXIT_OK

    def _fail(self, stage: Stage, exc: BaseException, machine: RunMachine | None) -> int:
        s = self.state
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.record(
            ev.StageFailed(
                stage=stage.name,
                step=s.step,
                epoch=s.epoch,
                error_type=type(exc).__name__,
                message=message,
            )
        )
        self.record(
            ev.RunFailed(
                error_type=type(exc).__name__, message=message, stage=stage.name, step=s.step
            )
        )
        if machine is not None:
            machine.fail()
        self.flush()
        self.reporter.finished(self.state, EXIT_FAILED)
        self.last_error = exc
        return EXIT_FAILED

    def _boundary(self, machine: RunMachine) -> int | None:
        """Between stages: honour signals, cancellation and the lease."""
        if self._interrupt is not None:
            self.record(
                ev.AttemptInterrupted(
                    attempt=self.state.attempt, signal=self._interrupt, step=self.state.step
                )
            )
            self.flush()
            self.reporter.finished(self.state, EXIT_INTERRUPTED)
            return EXIT_INTERRUPTED
        now = time.monotonic()
        if now - self._last_check < self.check_every_s:
            return None
        self._last_check = now
        self.store.renew_lease(self.run_id, self.holder, self.lease_ttl_s)
        if self.store.cancel_requested(self.run_id):
            self.record(ev.RunCancelled(reason="cancel requested", step=self.state.step))
            machine.cancel()
            self.flush()
            self.store.clear_cancel(self.run_id)
            self.reporter.finished(self.state, EXIT_FAILED)
            return EXIT_FAILED
        return None

    def _release(self) -> None:
        with contextlib.suppress(KitchenError):
            self.store.release_lease(self.run_id, self.holder)

    def _close_resources(self) -> None:
        """Close what the attempt opened (the ports' clients, ``ctx.on_close``), however it
        ended; newest first."""
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                close()

    # ------------------------------------------------------------------ signals

    def _install_signals(self) -> None:
        if not self.handle_signals:
            return
        self._old_handlers: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signals(self) -> None:
        for sig, old in getattr(self, "_old_handlers", {}).items():
            signal.signal(sig, old)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._interrupt is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self._interrupt = signal.Signals(signum).name
        print(
            f"kitchen: {self._interrupt} received; stopping after the current stage "
            "(send it again to stop at once)",
            file=sys.stderr,
        )


__all__ = [
    "EXIT_CONFLICT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "Identity",
    "Reporter",
    "ResumePoint",
    "Runner",
    "StageContext",
    "StageFn",
    "StageResult",
    "View",
]
