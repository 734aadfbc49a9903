"""One run on several processes: rank 0 leads, the other ranks follow.

Rank 0 runs the ordinary runner and is the run's only writer: lease, events, checkpoints,
blobs, metrics, spans. Before each stage it broadcasts (``Mirror.dispatch``) the events it
recorded since the last stage (the whole state the first time in an attempt), the stage to run
and what the stage may read (the resume point, whether the attempt was asked to stop), then
runs the stage. Every other rank (``follow``) folds those events into its own copy of the
state and runs the same stage function on it, so all ranks call the training client, and
through it the collectives, in the same order. A follower never opens the store: it has no
lease and records nothing; its stage results are dropped, since rank 0's are the run's.

Blobs a stage reads come from rank 0 (``LeaderBlobs`` broadcasts each answer,
``FollowerBlobs`` receives it), so no shared filesystem is needed for the state a resume
loads; what a follower's stage writes goes to a scratch folder and is thrown away. The
engine's own reads (the resume policy verifying checkpoints) stay on rank 0, outside stages.

An attempt ends with ``Mirror.end``: every follower exits with rank 0's exit code. A rank that
dies leaves the others waiting in a collective, which gives up after the timeout
(``PeerLost``): the attempt ends resumable.

Nothing here imports torch: the collectives are a port (``kitchen.ports.Collectives``).
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitchen.engine import events as ev
from kitchen.engine import faults, preemption
from kitchen.engine.state import Recorded, RunState, advance
from kitchen.errors import InfrastructureError
from kitchen.ports import BlobRef, BlobStore, Collectives
from kitchen.spec import Stage, Workflow
from kitchen.stage_api import Ports, ResumePoint, StageContext, StageFn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setup:
    """What a follower needs to build the run's ports and stages, from rank 0."""

    run_id: str
    workflow: str
    config: Any
    manifest: dict[str, str]
    lineage: dict[str, ev.LineageRef]
    lineage_paths: dict[str, str]


@dataclass(frozen=True)
class Dispatch:
    stage: str
    state: RunState | None  # the whole state at the first stage of an attempt, else None
    events: list[tuple[int, ev.Event]]
    resume: ResumePoint | None
    interrupted: bool


@dataclass(frozen=True)
class End:
    code: int


class Mirror:
    """Rank 0's side: tells the followers what to run, and how the attempt ended."""

    def __init__(self, collectives: Collectives, setup: Setup | None = None) -> None:
        self.collectives = collectives
        self.setup = setup  # launch fills it in once the run's settings are known
        self._setup_sent = False
        self._state_sent = False
        self.ended = False

    @property
    def world_size(self) -> int:
        return self.collectives.world_size

    def begin_attempt(self) -> None:
        """A new attempt: the next dispatch sends the whole state."""
        self._state_sent = False

    def dispatch(
        self,
        stage: Stage,
        state: RunState,
        tail: list[tuple[int, ev.Event]],
        resume: ResumePoint | None,
        interrupted: bool,
    ) -> None:
        if not self._setup_sent:
            assert self.setup is not None, "launch.distribute sets the mirror up first"
            self.collectives.broadcast(self.setup)
            self._setup_sent = True
        whole = None if self._state_sent else state
        events = [] if whole is not None else list(tail)
        tail.clear()
        self.collectives.broadcast(Dispatch(stage.name, whole, events, resume, interrupted))
        self._state_sent = True

    def end(self, code: int) -> None:
        """Tell the followers the attempt is over (at most once; a lost peer is not waited on)."""
        if self.ended:
            return
        self.ended = True
        try:
            self.collectives.broadcast(End(code))
        except InfrastructureError as exc:
            log.warning("kitchen: the other processes did not hear that the attempt ended: %s", exc)


class LeaderBlobs:
    """Rank 0's blob store inside stages: while a stage function runs (``sharing``), each
    read's answer is also sent to the followers, which run the same function; what runs after
    the commit (``StageResult.after_commit``, retention) is rank 0's alone and sends nothing."""

    def __init__(self, inner: BlobStore, collectives: Collectives) -> None:
        self._inner = inner
        self._c = collectives
        self.sharing = False

    def __getattr__(self, name: str) -> Any:  # location() and other extras
        return getattr(self._inner, name)

    def _send(self, value: Any) -> Any:
        return self._c.broadcast(value) if self.sharing else value

    def write_dir(self, key: str, fill: Callable[[Path], None]) -> BlobRef:
        return self._inner.write_dir(key, fill)

    def write_bytes(self, key: str, data: bytes) -> BlobRef:
        return self._inner.write_bytes(key, data)

    def read_bytes(self, uri: str) -> bytes:
        return bytes(self._send(self._inner.read_bytes(uri)))

    def local_path(self, uri: str) -> Path:
        return self._inner.local_path(uri)

    def exists(self, uri: str) -> bool:
        return bool(self._send(self._inner.exists(uri)))

    def verify(self, ref: BlobRef) -> bool:
        return bool(self._send(self._inner.verify(ref)))

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(self._send(list(self._inner.list(prefix))))

    def delete(self, uri: str) -> None:
        self._inner.delete(uri)


class FollowerBlobs:
    """A follower's blob store: reads are rank 0's answers; writes fill a scratch folder (a
    checkpoint's writer still runs, collectives included) and are thrown away."""

    def __init__(self, collectives: Collectives, scratch: Path) -> None:
        self._c = collectives
        self._scratch = scratch

    def write_dir(self, key: str, fill: Callable[[Path], None]) -> BlobRef:
        folder = Path(tempfile.mkdtemp(dir=self._scratch))
        try:
            fill(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return BlobRef(f"follower:{key}", "", 0)

    def write_bytes(self, key: str, data: bytes) -> BlobRef:
        return BlobRef(f"follower:{key}", "", len(data))

    def read_bytes(self, uri: str) -> bytes:
        return bytes(self._c.broadcast(None))

    def local_path(self, uri: str) -> Path:
        raise InfrastructureError("a follower has no blob paths: read the blob instead")

    def exists(self, uri: str) -> bool:
        return bool(self._c.broadcast(None))

    def verify(self, ref: BlobRef) -> bool:
        return bool(self._c.broadcast(None))

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(self._c.broadcast(None))

    def delete(self, uri: str) -> None:
        return None


@dataclass
class Follower:
    """A follower's copy of the run: rank 0's state as of the last dispatch."""

    collectives: Collectives
    open_run: Callable[[Setup, Path], tuple[Workflow, Ports, dict[str, StageFn], Any]]
    scratch: Path
    state: RunState | None = None
    owned: set[str] = field(default_factory=set)

    def run(self) -> int:
        """Follow rank 0 until it ends the attempt; its exit code. Signals are rank 0's to
        act on (``preemption.following``)."""
        with preemption.following():
            return self._loop()

    def _loop(self) -> int:
        closers: list[Callable[[], None]] = []
        world: tuple[Workflow, Ports, dict[str, StageFn], Any] | None = None
        setup: Setup | None = None
        try:
            while True:
                msg = self.collectives.broadcast(None)
                if isinstance(msg, End):
                    return msg.code
                if isinstance(msg, Setup):
                    setup = msg
                    world = self.open_run(msg, self.scratch)
                    closers.append(world[1].training.close)
                    continue
                assert isinstance(msg, Dispatch) and world is not None and setup is not None
                self._fold(msg)
                self._stage(msg, setup, world, closers)
        finally:
            for close in reversed(closers):
                try:
                    close()
                except Exception as exc:
                    log.debug("kitchen: closing after following: %s", exc)

    def _fold(self, msg: Dispatch) -> None:
        if msg.state is not None:
            self.state, self.owned = msg.state, set()
        assert self.state is not None
        for seq, event in msg.events:
            self.state = advance(self.state, Recorded(seq, None, event), self.owned)

    def _stage(
        self,
        msg: Dispatch,
        setup: Setup,
        world: tuple[Workflow, Ports, dict[str, StageFn], Any],
        closers: list[Callable[[], None]],
    ) -> None:
        workflow, ports, stages, resources = world
        assert self.state is not None
        stage = next(s for s in workflow.stages() if s.name == msg.stage)
        ctx = StageContext(
            run_id=setup.run_id,
            attempt=self.state.attempt,
            config=setup.config,
            resources=resources,
            state=self.state,
            stage=stage,
            home=self.scratch,
            run_dir=self.scratch / setup.run_id,
            ports=ports,
            resume=msg.resume,
            interrupted=lambda: msg.interrupted,
            on_close=closers.append,
            lineage=setup.lineage,
            lineage_paths=setup.lineage_paths,
        )
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        faults.point(f"stage:{msg.stage}:before")
        try:
            stages[msg.stage](ctx)
        except InfrastructureError:
            raise  # a lost peer: nothing more can be followed
        except Exception as exc:
            print(
                f"kitchen: rank {self.collectives.rank}: stage {msg.stage} failed here: {exc}",
                file=sys.stderr,
            )


__all__ = ["Dispatch", "End", "Follower", "FollowerBlobs", "LeaderBlobs", "Mirror", "Setup"]
