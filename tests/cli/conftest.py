"""Hand-written run histories in a real SQLite store, and the real ``kitchen`` console script.

Each history is a list of event records appended through the public store API, exactly as a
runner would; the commands under test then run as subprocesses with KITCHEN_HOME and
KITCHEN_DB_URL pointing at them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.engine import events as ev
from kitchen.ports import BlobRef
from kitchen.store import EventStore, NewEvent, open_store
from kitchen.testing.cli import Kitchen, Result

KITCHEN = str(Path(sys.executable).with_name("kitchen"))
HOST = socket.gethostname()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def store(sqlite_url: str) -> Iterator[EventStore]:
    s = open_store(sqlite_url)
    yield s
    s.close()


@pytest.fixture
def kitchen(home: Path, sqlite_url: str) -> Kitchen:
    def run(*args: str, python_flags: tuple[str, ...] = ()) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KITCHEN_", "OTEL_"))}
        env |= {"KITCHEN_HOME": str(home), "KITCHEN_DB_URL": sqlite_url}
        argv = [sys.executable, *python_flags, KITCHEN] if python_flags else [KITCHEN]
        proc = subprocess.run(
            [*argv, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


# --------------------------------------------------------------------------- building histories


# These histories are written as the first version of the log wrote them (schema v1 of the
# types that have changed since), so every read-side command is also tested on upcast events.
V2_KEYS = {"RunCreated": ("lineage",), "CheckpointSaved": ("location",), "StageCompleted": ()}


def as_stored(e: ev.Event) -> NewEvent:
    payload = e.payload()
    if e.type_name() in V2_KEYS:
        for key in V2_KEYS[e.type_name()]:
            payload.pop(key, None)
        return NewEvent(e.type_name(), payload, 1)
    return NewEvent(e.type_name(), payload, e.schema_version)


def add(store: EventStore, run_id: str, *events: ev.Event) -> None:
    batch = [as_stored(e) for e in events]
    store.append(run_id, batch, expected_seq=store.last_seq(run_id))


def created(run_id: str, recipe: str = "sl_basic") -> ev.RunCreated:
    return ev.RunCreated(
        recipe=recipe,
        workflow="supervised",
        config={"learning_rate": 0.0001, "max_steps": 2, "dataset": "arith-chat"},
        config_hash="c0ffee",
        seed=7,
        versions={"python": "3.11.9"},
        data_fingerprint="da7a",
        run_dir=run_id,
    )


def attempt(n: int, pid: int, resumed_from: int | None = None) -> ev.AttemptStarted:
    return ev.AttemptStarted(
        attempt=n, worker=f"{HOST}:{pid}:ab", host=HOST, pid=pid, resumed_from=resumed_from
    )


def started(stage: str, step: int, attempt_no: int = 1) -> ev.StageStarted:
    return ev.StageStarted(
        stage=stage, source="start", dest=stage, step=step, epoch=0, attempt=attempt_no
    )


def completed(stage: str, step: int, **outputs: object) -> ev.StageCompleted:
    return ev.StageCompleted(
        stage=stage, dest=stage, step=step, epoch=0, outputs=dict(outputs), duration_s=0.25
    )


def losses(step: int, nll: float) -> ev.StageCompleted:
    return completed("log_step_metrics", step, steps={str(step): {"train_mean_nll": nll}})


def blob(home: Path, key: str, content: bytes) -> BlobRef:
    """A folder blob with one file, written the way the runner writes checkpoints."""

    def fill(folder: Path) -> None:
        (folder / "weights.bin").write_bytes(content)

    return LocalBlobStore(home).write_dir(key, fill)


def checkpoint(ref: BlobRef, step: int, final: bool = False) -> ev.CheckpointSaved:
    return ev.CheckpointSaved(
        name=f"step-{step:06d}",
        step=step,
        epoch=0,
        uri=ref.uri,
        sha256=ref.sha256,
        bytes=ref.bytes,
        machine_state="save_checkpoint",
        cursor={"epoch": 0, "batch_index": step},
        final=final,
    )


def completed_run(store: EventStore, home: Path, run_id: str = "done") -> None:
    """Two steps, a checkpoint, final weights, an evaluation, RunCompleted: 11 events."""
    ckpt = blob(home, f"{run_id}/checkpoints/step-000001", b"one step of weights")
    final = blob(home, f"{run_id}/final", b"the adapter")
    add(
        store,
        run_id,
        created(run_id),  # 1
        attempt(1, 4242),  # 2
        started("optim_step", 0),  # 3
        completed("optim_step", 0, learning_rate=0.0001),  # 4
        losses(0, 2.5),  # 5
        checkpoint(ckpt, 1),  # 6
        completed("optim_step", 1, learning_rate=0.0001),  # 7
        losses(1, 2.0),  # 8
        completed("save_final_weights", 2, uri=final.uri, sha256=final.sha256, bytes=final.bytes),
        completed(  # 10
            "evaluate", 2, metrics={"test/nll": 1.75, "test/accuracy": 0.5, "test/examples": 8}
        ),
        ev.RunCompleted(
            step=2,
            metrics={"train_mean_nll": 2.0, "test/nll": 1.75, "test/accuracy": 0.5},
            adapter_uri=final.uri,
        ),  # 11
    )


def resumed_run(store: EventStore, home: Path, run_id: str = "again") -> None:
    """Attempt 1 checkpoints at step 1, logs step 1 and dies; attempt 2 resumes from the
    checkpoint (seq 5), redoes step 1 with a different loss and is interrupted: 14 events,
    seqs 6-8 superseded."""
    ckpt = blob(home, f"{run_id}/checkpoints/step-000001", b"weights after step 0")
    add(
        store,
        run_id,
        created(run_id),  # 1
        attempt(1, 4242),  # 2
        completed("optim_step", 0),  # 3
        losses(0, 3.0),  # 4
        checkpoint(ckpt, 1),  # 5
        started("get_batch", 1),  # 6
        completed("optim_step", 1),  # 7
        losses(1, 2.75),  # 8
        attempt(2, 4343, resumed_from=5),  # 9
        ev.RunResumed(
            attempt=2,
            from_checkpoint_seq=5,
            from_step=1,
            machine_state="save_checkpoint",
            cursor={"epoch": 0, "batch_index": 1},
            config_hash="c0ffee",
        ),  # 10
        completed("optim_step", 1),  # 11
        losses(1, 2.5),  # 12
        ev.DeterminismMismatch(
            step=1, metric="train_mean_nll", logged=2.75, replayed=2.5, tolerance=1e-6, logged_seq=8
        ),  # 13
        ev.AttemptInterrupted(attempt=2, signal="SIGTERM", step=1),  # 14
    )


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped), so it no longer exists."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def running_run(store: EventStore, run_id: str, pid: int, recipe: str = "sl_basic") -> None:
    """A run mid-step whose lease is held by ``pid`` on this host for an hour."""
    add(store, run_id, created(run_id, recipe), attempt(1, pid), started("get_batch", 0))
    store.acquire_lease(run_id, f"{HOST}:{pid}:ab", host=HOST, pid=pid, attempt=1, ttl_s=3600)


@pytest.fixture
def runs_db(store: EventStore, home: Path) -> None:
    """The test database holds five runs:

    - ``done``: 11 events, completed, one live checkpoint (seq 6) and a final adapter (seq 9);
    - ``again``: 14 events, resumed once from the checkpoint at seq 5, seqs 6-8 superseded,
      interrupted;
    - ``gone``: running in the log, but its lease holder's pid is dead: crashed;
    - ``busy``: running, its lease held by this test process, recipe ``dpo_basic``;
    - ``fresh``: RunCreated only.
    """
    completed_run(store, home, "done")
    resumed_run(store, home, "again")
    running_run(store, "gone", dead_pid())
    running_run(store, "busy", os.getpid(), recipe="dpo_basic")
    add(store, "fresh", created("fresh"))


@pytest.fixture
def add_events(store: EventStore) -> Callable[..., None]:
    """``add_events(run_id, *events)``: append hand-written events to the test store."""

    def append(run_id: str, *events: ev.Event) -> None:
        add(store, run_id, *events)

    return append
