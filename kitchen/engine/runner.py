"""The runner: drives one attempt of a run through its state machine.

Per transition: choose the next edge → ``StageStarted`` → the stage inside a span →
``StageCompleted`` (or ``StageFailed`` + ``RunFailed``) → the machine takes the edge. Events go
into the unit of work (``kitchen.engine.unit_of_work``), folded into the in-memory ``RunState`` at
once; they reach the database by group commit, at points the unit of work alone decides (the
runner tells it what happened, never when to commit):

- every stage that is not ``hot`` commits what came before it together with its own
  ``StageStarted`` before it runs, and its other events when it ends (set-up, checkpoints,
  evaluation: anything with side effects that cannot be redone);
- the ``hot`` per-step stages share one commit per step, made at the top of the step loop,
  or, when steps are faster than the commit window (``commit_window_s``; ``kitchen run``
  takes it from ``KITCHEN_COMMIT_WINDOW_MS``, default 50 ms), one commit per window;
- a stage that records artifacts commits at its end, before anything is built on them;
- a stage that records an activity (``ctx.record_activity``, ``ctx.start_activity``:
  ``kitchen.engine.activities``) commits it, with everything before it, before the call
  returns, so the stage goes on only once the activity's start or result is on record;
- the end of an attempt (completed, failed, interrupted, cancelled) always commits.

A fault outside the run (``InfrastructureError``: a full disk, the database or a remote service
unreachable past its retries; a full, read-only or failing disk from anywhere counts too, in
whatever words the writing library used: ``kitchen.engine.io_faults``) is not a
failure of the run: wherever it arises in an attempt, the attempt ends with
``AttemptInterrupted`` naming the fault, committed when the log can still be written, and exit
75 (``EX_TEMPFAIL``); ``kitchen resume`` continues once the fault is gone. When the database is
what is gone, nothing can be recorded: the log still says ``running`` and the lease is left
behind, so the run shows as ``crashed`` once the lease is dead and resumes the same way.

A crash therefore loses at most the uncommitted events of the step in flight, or of the steps
of the last commit window when steps are faster than it, which resume re-executes anyway.
Stages never touch the store or the machine: they get a ``StageContext`` and return a
``StageResult`` (``kitchen.stage_api``). The lease, signals and cancellation are
``kitchen.engine.attempt``'s; what a resume compares and where it continues,
``kitchen.engine.resume_policy``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kitchen.engine import events as ev
from kitchen.engine import faults, preemption, snapshots
from kitchen.engine import resume_policy as policy
from kitchen.engine.activities import Journal
from kitchen.engine.attempt import AttemptGuard
from kitchen.engine.distributed import LeaderBlobs, Mirror
from kitchen.engine.io_faults import storage_fault
from kitchen.engine.machine import RunMachine
from kitchen.engine.resume_policy import Identity
from kitchen.engine.state import RunState
from kitchen.engine.unit_of_work import UnitOfWork
from kitchen.errors import (
    ConcurrencyConflict,
    ConfigError,
    IllegalTransition,
    InfrastructureError,
    LeaseHeld,
    OutOfMemory,
    StoreUnavailable,
)
from kitchen.ports import EventLog
from kitchen.spec import (
    FINISH_TRIGGER,
    INITIAL,
    PREEMPTION_PENDING,
    Loop,
    Node,
    Stage,
    Transition,
    Workflow,
)
from kitchen.stage_api import (
    ActivityLog,
    NoActivityLog,
    Ports,
    ResumePoint,
    StageContext,
    StageFn,
    StageResult,
    View,
)

EXIT_OK, EXIT_FAILED, EXIT_CONFLICT, EXIT_INTERRUPTED = 0, 1, 3, 130
EXIT_TEMPFAIL = 75  # sysexits.h EX_TEMPFAIL: a fault outside the run; resume once it is gone
EXIT_OUT_OF_MEMORY = 71  # sysexits.h EX_OSERR: out of memory; resume with other settings
EXIT_PREEMPTED = preemption.EXIT_PREEMPTED  # 143: SIGTERM/SIGUSR1, a checkpoint on record


class Reporter:
    """Progress hooks for the CLI; the default reports nothing."""

    def created(self, state: RunState) -> None:
        """The run's first events are committed: it exists now."""

    def started(self, state: RunState, workflow: Workflow) -> None: ...

    def stage_done(self, stage: Stage, result: StageResult, state: RunState) -> None: ...

    def fault(self, error: InfrastructureError, recorded: bool) -> None:
        """A fault outside the run ends the attempt (``finished`` follows, with exit 75);
        ``recorded``: whether its ``AttemptInterrupted`` reached the log."""

    def finished(self, state: RunState, code: int) -> None: ...


def as_fault(exc: BaseException) -> InfrastructureError | None:
    """``exc`` as a fault outside the run, or None when it is an error of the run itself:
    an ``InfrastructureError``, or a full, read-only or failing disk in whatever words the
    library that was writing used (``kitchen.engine.io_faults``)."""
    return storage_fault(exc)


def _loop_heads(nodes: tuple[Node, ...]) -> set[str]:
    heads: set[str] = set()
    for n in nodes:
        if isinstance(n, Loop):
            first = n.body[0]
            assert isinstance(first, Stage)
            heads.add(first.slot)
            heads |= _loop_heads(n.body)
    return heads


def _stage_code(workflow: Workflow, stages: Mapping[str, StageFn] | None) -> Mapping[str, StageFn]:
    if stages is None:
        if workflow.code is None:
            raise ConfigError(f"workflow {workflow.name!r} has no stage code")
        stages = workflow.code()
    missing = {s.name for s in workflow.stages()} - set(stages)
    if missing:
        raise ConfigError(f"workflow {workflow.name!r} has stages without code: {sorted(missing)}")
    return stages


class Runner:
    def __init__(
        self,
        *,
        store: EventLog,
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
        snapshot_every: int = snapshots.DEFAULT_EVERY,
        commit_window_s: float = 0.0,
        operating: Mapping[str, Any] | None = None,
        float_moving: frozenset[str] = frozenset(),
        mirror: Mirror | None = None,
    ) -> None:
        self.workflow = workflow
        self.table = workflow.compile()
        self.stages = _stage_code(workflow, stages)
        self.run_id = run_id
        self.config = config
        self.home = Path(home)
        self.run_dir = self.home / run_id
        self.ports = ports
        self.lineage = dict(lineage or {})
        self.lineage_paths = dict(lineage_paths or {})
        self.telemetry = telemetry
        self.reporter = reporter or Reporter()
        self.tolerance = determinism_tolerance
        self.operating = None if operating is None else dict(operating)
        self.float_moving = float_moving
        self.on_created = on_created
        self.uow = UnitOfWork(store, run_id, snapshots.Policy(snapshot_every), commit_window_s)
        # On several processes, rank 0 (this runner) tells the others each stage to run with
        # the events recorded since the last one (kitchen.engine.distributed); its stages read
        # blobs through a store that sends each answer to them too.
        self.mirror = mirror
        self._stage_ports = ports
        if mirror is not None:
            self.uow.tail = []
            self._stage_ports = dataclasses.replace(
                ports, blobs=LeaderBlobs(ports.blobs, mirror.collectives)
            )
        self._dispatched_interrupt = False
        self._leader_blobs = self._stage_ports.blobs if mirror is not None else None
        # Activities are recorded on one process only: on several, every rank refuses them in
        # the same stage, so the run fails in one line rather than calling an effect per rank.
        self._journal: ActivityLog = (
            Journal(self.uow, ports.blobs, run_id) if mirror is None else NoActivityLog()
        )
        self.guard = AttemptGuard(
            store,
            run_id,
            lease_ttl_s=lease_ttl_s,
            check_every_s=check_every_s,
            handle_signals=handle_signals,
        )
        self.resources = workflow.resources()
        self._closers: list[Callable[[], None]] = [ports.training.close]
        self._heads = _loop_heads(workflow.body)
        self._rebuilding = False
        self._resume: ResumePoint | None = None
        # Ends the attempt (interrupted, resumable) at the first stage boundary where it says
        # so: a fork re-executing its parent's steps stops at the fork point.
        self.stop_when: Callable[[RunState], bool] | None = None

    @property
    def state(self) -> RunState:
        return self.uow.state

    # ------------------------------------------------------------------ entry points

    def start(self, created: ev.RunCreated) -> int:
        if self.uow.store.run_exists(self.run_id):
            raise self._exists_error()
        self.guard.acquire(1)
        try:
            with self._attempt_span(1, None) as span:
                started = self._attempt_started(1, span, None)
                try:
                    self.uow.begin_attempt(created, started)
                except ConcurrencyConflict:
                    raise self._exists_error() from None
                return self._until_fault(self._first_attempt)
        finally:
            self.guard.release()

    def _first_attempt(self) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.on_created is not None:
            self.on_created(self.run_dir)
        self.reporter.created(self.state)
        return self._drive(RunMachine(self.table, self.workflow.conditions, INITIAL))

    def fork(self, created: ev.RunCreated, state: ev.CheckpointSaved, identity: Identity) -> int:
        """Start a fork: its creation, its first checkpoint (the state it starts from, already
        written to its folder) and its first attempt, resumed from that checkpoint, are
        committed together; then the attempt runs as any resumed one does."""
        if self.uow.store.run_exists(self.run_id):
            raise self._exists_error()
        self.guard.acquire(1)
        try:
            with self._attempt_span(1, None) as span:
                # seqs: 1 RunCreated, 2 the checkpoint, 3 AttemptStarted, 4 RunResumed
                resumed = ev.RunResumed(
                    attempt=1,
                    from_checkpoint_seq=2,
                    from_step=state.step,
                    machine_state=state.machine_state,
                    cursor=dict(state.cursor),
                    config_hash=identity.config_hash,
                    data_fingerprint=identity.data_fingerprint,
                    versions=dict(identity.versions),
                    torch_threads=identity.torch_threads,
                )
                try:
                    self.uow.begin_attempt(
                        created, state, self._attempt_started(1, span, 2), resumed
                    )
                except ConcurrencyConflict:
                    raise self._exists_error() from None
                ckpt = self.state.live_checkpoints()[-1]
                return self._until_fault(lambda: self._first_fork_attempt(ckpt))
        finally:
            self.guard.release()

    def _first_fork_attempt(self, ckpt: Any) -> int:
        if self.on_created is not None:
            self.on_created(self.run_dir)
        self.reporter.created(self.state)
        return self._next_attempt(ckpt)

    def _exists_error(self) -> ConfigError:
        return ConfigError(
            f"run {self.run_id!r} already exists; continue it with `kitchen resume {self.run_id}`"
        )

    def resume(self, identity: Identity, *, force: bool = False) -> int:
        differences, refused = policy.compare(self._refold(), identity)
        if refused and not force:
            raise policy.refusal(self.run_id, refused)
        self.guard.acquire(self.state.attempt + 1)
        try:
            state = self._refold(catch_up=True)  # the lease is ours: nobody appends behind us
            attempt = state.attempt + 1
            # the checkpoints first: a run folder made here would hide a blob store gone away
            ckpt, bad = policy.newest_valid_checkpoint(state, self.ports.blobs, self.ports.training)
            if ckpt is None and state.fork is not None:
                raise ConfigError(
                    f"run {self.run_id!r} is a fork of {state.fork.run_id!r} and its checkpoints "
                    "are all missing or corrupt, so its starting state is gone; fork "
                    f"{state.fork.run_id}@{state.fork.step} again"
                )
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with self._attempt_span(attempt, policy.previous_span(state)) as span:
                forced = bool(refused) and force
                opening = (
                    self._attempt_started(attempt, span, ckpt.seq if ckpt else None),
                    *policy.invalidated(bad),
                    policy.resumed(attempt, ckpt, identity, differences, forced),
                )
                try:
                    self.uow.begin_attempt(*opening)
                except ConcurrencyConflict:
                    raise LeaseHeld(
                        f"run {self.run_id!r} is being resumed by another worker"
                    ) from None
                return self._until_fault(lambda: self._next_attempt(ckpt))
        finally:
            self.guard.release()

    def _next_attempt(self, ckpt: Any) -> int:
        self._resume = policy.resume_point(ckpt, self.ports.blobs)
        initial = ckpt.machine_state if ckpt is not None else INITIAL
        machine = RunMachine(self.table, self.workflow.conditions, initial)
        return self._drive(machine, rebuild=ckpt is not None)

    def _refold(self, *, catch_up: bool = False) -> RunState:
        """The run's state: folded afresh, or (``catch_up``) the state folded before with the
        events appended since, which is the same fold at a fraction of its cost."""
        state = self.uow.catch_up() if catch_up else self.uow.refold()
        if state.terminal:
            raise ConfigError(f"run {self.run_id!r} is {state.status}; there is nothing to resume")
        return state

    # ------------------------------------------------------------------ the attempt

    def _attempt_started(
        self, attempt: int, span: Any, resumed_from: int | None
    ) -> ev.AttemptStarted:
        """The attempt's worker, span and operating settings; the backend describes itself
        (device, threads)."""
        trace_id, span_id = self.telemetry.ids(span) if self.telemetry and span else (None, None)
        backend = {str(k): str(v) for k, v in self.ports.training.describe().items()}
        threads = backend.get("torch_threads")
        return ev.AttemptStarted(
            attempt=attempt,
            worker=self.guard.holder,
            host=socket.gethostname(),
            pid=os.getpid(),
            trace_id=trace_id,
            span_id=span_id,
            resumed_from=resumed_from,
            torch_threads=int(threads) if threads is not None else None,
            operating=self.operating,
            backend=backend,
            world_size=self.mirror.world_size if self.mirror is not None else 1,
            dist_backend=self.mirror.collectives.backend if self.mirror is not None else None,
        )

    def _attempt_span(self, attempt: int, previous: tuple[str, str] | None) -> Any:
        if self.telemetry is None:
            return contextlib.nullcontext(None)
        return self.telemetry.attempt_span(self.run_id, attempt, previous)

    @contextlib.contextmanager
    def _attempt(self) -> Iterator[None]:
        """Signals are honoured while the attempt runs; what it opened is closed after."""
        try:
            with self.guard.signals():
                yield
        finally:
            closers, self._closers = self._closers, []
            for close in reversed(closers):
                with contextlib.suppress(Exception):
                    close()

    def _drive(self, machine: RunMachine, *, rebuild: bool = False) -> int:
        if self.mirror is not None:
            self.mirror.begin_attempt()
        with self._attempt():
            self.reporter.started(self.state, self.workflow)
            code = self._rebuild(machine) if rebuild else None
            while code is None:
                code = self._boundary(machine)
                if code is None:
                    code = self._step(machine, self._next_row(machine))
            return code

    def _next_row(self, machine: RunMachine) -> Transition:
        row = machine.choose(self._view())
        if row is None:
            raise IllegalTransition(
                f"no transition of workflow {self.workflow.name!r} applies in state "
                f"{machine.state!r}"
            )
        return row

    def _view(self) -> View[Any, Any]:
        return View(self.state, self.config, self.resources, self.guard.preempted)

    def _step(self, machine: RunMachine, row: Transition) -> int | None:
        if row.trigger == FINISH_TRIGGER:
            return self._complete(machine, row)
        stage = self.workflow.stage_at(row.dest)
        return self._run_stage(stage, row.source, row.dest, machine, row)

    def _rebuild(self, machine: RunMachine) -> int | None:
        """Re-run the set-up stages (as events of this attempt) without moving the machine.

        Set-up can take minutes (loading a model), so signals, cancellation and the lease are
        honoured between its stages as between any others.
        """
        self._rebuilding = True
        try:
            for stage in self.workflow.stages():
                if stage.setup:
                    code = self._boundary(machine)
                    if code is None:
                        code = self._run_stage(stage, machine.state, machine.state, machine)
                    if code is not None:
                        return code
        finally:
            self._rebuilding = False
        return None

    # ------------------------------------------------------------------ one stage

    def _run_stage(
        self,
        stage: Stage,
        source: str,
        dest: str,
        machine: RunMachine,
        row: Transition | None = None,
    ) -> int | None:
        s = self.state
        started = ev.StageStarted(
            stage=stage.name,
            source=source,
            dest=dest,
            step=s.step,
            epoch=s.epoch,
            attempt=s.attempt,
        )
        seq = self.uow.stage_started(started, hot=stage.hot, step_head=dest in self._heads)
        span = self._stage_span(stage, s, seq)
        t0 = time.perf_counter()
        if self.mirror is not None:
            self._dispatched_interrupt = self.guard.interrupted
            assert self.uow.tail is not None
            self.mirror.dispatch(stage, s, self.uow.tail, self._resume, self._dispatched_interrupt)
        try:
            result = self._call(stage, s)
        except Exception as exc:
            if span is not None:
                self.telemetry.end_with_error(span, exc)
            if as_fault(exc) is not None:
                raise  # not the run's failure: the attempt ends resumable (_until_fault)
            return self._fail(stage, exc, machine)
        except BaseException as exc:  # stopped at once (a second signal): still show where
            if span is not None:
                self.telemetry.end_with_error(span, exc)
            raise
        if span is not None:
            span.end()
        res = result if isinstance(result, StageResult) else StageResult(dict(result or {}))
        self._record_result(stage, dest, res, time.perf_counter() - t0)
        if row is not None:
            machine.take(row)
        durable = bool(res.after_commit or res.artifacts)
        self.uow.stage_ended(stage.name, hot=stage.hot, durable=durable)
        for effect in res.after_commit:
            effect()
        self.reporter.stage_done(stage, res, self.state)
        return None

    def _record_result(self, stage: Stage, dest: str, res: StageResult, duration_s: float) -> None:
        if res.metrics:
            metrics = faults.perturbed(res.metrics, self.workflow.step_metric, self.state.attempt)
            if metrics is not res.metrics:
                res = dataclasses.replace(res, metrics=metrics)
        self.uow.record(self._completed(stage, dest, res, duration_s))
        if res.metrics:
            self._after_step_metrics(res.metrics)
        self.uow.stage_events(res.events)

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
            ports=self._stage_ports,
            resume=self._resume,
            interrupted=self._interrupted,
            on_close=self._closers.append,
            lineage=self.lineage,
            lineage_paths=self.lineage_paths,
            activities=self._journal,
        )

    def _call(self, stage: Stage, s: RunState) -> Any:
        if not isinstance(self._leader_blobs, LeaderBlobs):
            return self.stages[stage.name](self._context(stage, s))
        self._leader_blobs.sharing = True
        try:
            return self.stages[stage.name](self._context(stage, s))
        finally:
            self._leader_blobs.sharing = False

    def _interrupted(self) -> bool:
        """Whether the attempt was asked to stop; on several processes, what every rank was
        told when the stage began, so all of them take the same path through it."""
        if self.mirror is not None:
            return self._dispatched_interrupt
        return self.guard.interrupted

    def _stage_span(self, stage: Stage, s: RunState, seq: int) -> Any:
        if self.telemetry is None or not getattr(self.telemetry, "recording", True):
            return None  # nothing would receive the span
        return self.telemetry.stage_span(
            stage.name,
            {
                "kitchen.run_id": self.run_id,
                "kitchen.engine.attempt": s.attempt,
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
            changed = policy.float_moving_changes(self.state, old[0], self.float_moving)
            rtol = policy.CHANGED_SETTING_RTOL if changed else 0.0
            if not abs(logged - replayed) <= max(self.tolerance, rtol * abs(logged)):
                self.uow.record(
                    ev.DeterminismMismatch(
                        step=step,
                        metric=metric,
                        logged=logged,
                        replayed=replayed,
                        tolerance=self.tolerance,
                        logged_seq=old[0],
                        relative_tolerance=rtol,
                        changed=changed,
                    )
                )

    # ------------------------------------------------------------------ endings

    def _end(self, event: ev.Event, code: int, move: Callable[[], None] | None = None) -> int:
        """Move the machine, record and commit how the attempt ended, report."""
        if move is not None:
            move()
        self.uow.end_attempt(event)
        if self.mirror is not None:
            self.mirror.end(code)
        self.reporter.finished(self.state, code)
        return code

    def _complete(self, machine: RunMachine, row: Transition) -> int:
        s = self.state
        metrics = dict(s.last_metrics())
        metrics.update(s.eval_metrics.get(max(s.eval_metrics, default=-1), {}))
        clean = {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, int | float) and math.isfinite(v)
        }
        final = s.latest_artifact("final_weights")
        done = ev.RunCompleted(
            step=s.step, metrics=clean, adapter_uri=final.uri if final is not None else None
        )
        return self._end(done, EXIT_OK, lambda: machine.take(row))

    def _fail(self, stage: Stage, exc: BaseException, machine: RunMachine) -> int:
        s = self.state
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        error = type(exc).__name__
        self.uow.record(
            ev.StageFailed(
                stage=stage.name, step=s.step, epoch=s.epoch, error_type=error, message=message
            )
        )
        failed = ev.RunFailed(error_type=error, message=message, stage=stage.name, step=s.step)
        return self._end(failed, EXIT_FAILED, machine.fail)

    def _until_fault(self, attempt: Callable[[], int]) -> int:
        """Run the attempt; a fault outside the run ends it resumable instead of failed."""
        try:
            return attempt()
        except Exception as exc:
            fault = as_fault(exc)
            if fault is None:
                raise
            return self._suspend(fault)

    def _suspend(self, fault: InfrastructureError) -> int:
        """Record that a fault stopped the attempt, if the log can still be written; exit 75
        (71 for running out of memory: the fault's own exit code).

        When the database is the fault, nothing more is tried: the retry budget is spent.
        """
        s = self.state
        text = str(fault)
        reason = text.splitlines()[0] if text else type(fault).__name__
        stop = ev.AttemptInterrupted(
            attempt=s.attempt, step=s.step, fault=fault.fault, reason=reason, stage=s.stage
        )
        recorded = self.uow.end_after_fault(stop, store_gone=isinstance(fault, StoreUnavailable))
        code = EXIT_OUT_OF_MEMORY if isinstance(fault, OutOfMemory) else EXIT_TEMPFAIL
        if self.mirror is not None:
            self.mirror.end(code)
        self.reporter.fault(fault, recorded)
        self.reporter.finished(self.state, code)
        return code

    def _boundary(self, machine: RunMachine) -> int | None:
        """Between stages: honour signals, cancellation and the lease."""
        s = self.state
        if self.stop_when is not None and self.stop_when(s):
            stop = ev.AttemptInterrupted(attempt=s.attempt, signal="stop", step=s.step)
            return self._end(stop, EXIT_INTERRUPTED)
        if self.guard.signal is not None and not self.guard.preempted:
            stop = ev.AttemptInterrupted(attempt=s.attempt, signal=self.guard.signal, step=s.step)
            return self._end(stop, EXIT_INTERRUPTED)
        if self.guard.preempted and self._may_leave(machine):
            stop = ev.AttemptInterrupted(
                attempt=s.attempt, signal=self.guard.signal, step=s.step, reason="preempted"
            )
            return self._end(stop, EXIT_PREEMPTED)
        if not self.guard.cancel_requested():
            return None
        code = self._end(
            ev.RunCancelled(reason="cancel requested", step=s.step), EXIT_FAILED, machine.cancel
        )
        self.guard.clear_cancel()
        return code

    def _may_leave(self, machine: RunMachine) -> bool:
        """Whether a preempted attempt may stop here without losing a step: it is setting up;
        or no step is in flight (the workflow's ``preemption_pending`` says) and either every
        logged step is in the newest checkpoint (one saved since the signal, or one from
        before it) or the next stage would begin another step (a workflow whose conditions
        take no preemption checkpoint stops there)."""
        if self._rebuilding:
            return True
        view = self._view()
        pending = self.workflow.conditions.get(PREEMPTION_PENDING)
        if pending is not None and pending(view):
            return False
        s = self.state
        live = s.live_checkpoints()
        held = live[-1].step if live else 0  # the number of steps the newest checkpoint holds
        if not s.step_metrics or max(s.step_metrics) < held:
            return True
        row = machine.choose(view)
        if row is None or row.trigger == FINISH_TRIGGER:
            return True
        return row.dest in self._heads


__all__ = [
    "EXIT_CONFLICT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUT_OF_MEMORY",
    "EXIT_PREEMPTED",
    "EXIT_TEMPFAIL",
    "Identity",
    "Reporter",
    "ResumePoint",
    "Runner",
    "StageContext",
    "StageFn",
    "StageResult",
    "View",
]
