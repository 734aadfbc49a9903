"""What one attempt writes: the exact event sequence, failures, cancellation, group commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakeflow import RUN_ID, FakeConfig, created, folded, history, make_runner
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.engine.runner import EXIT_FAILED, EXIT_OK, StageContext
from kitchen.engine.telemetry import Telemetry
from kitchen.store import EventStore, open_store

S, C = "StageStarted", "StageCompleted"

# Outcomes that depend on how the database commits and locks are checked on both back-ends.
BOTH_DATABASES = pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)

# fmt: off
THREE_STEPS_SAVING_EVERY_TWO: list[tuple[Any, ...]] = [
    ("RunCreated",),
    ("AttemptStarted", 1),
    (S, "setup", 0), (C, "setup", 0),
    # step 0
    (S, "get_batch", 0), (C, "get_batch", 0),
    (S, "train", 0), (C, "train", 0),
    (S, "log_step_metrics", 0), (C, "log_step_metrics", 0),
    # step 1: get_batch starts at the step the run is at, and completes on the batch it took
    (S, "get_batch", 0), (C, "get_batch", 1),
    (S, "train", 1), (C, "train", 1),
    (S, "log_step_metrics", 1), (C, "log_step_metrics", 1),
    # two steps done: save_due fires, and the checkpoint holds two optimizer steps
    (S, "save_checkpoint", 1), (C, "save_checkpoint", 1),
    ("CheckpointSaved", 2),
    # step 2: three steps done is the end, so save_due does not fire and writes nothing
    (S, "get_batch", 1), (C, "get_batch", 2),
    (S, "train", 2), (C, "train", 2),
    (S, "log_step_metrics", 2), (C, "log_step_metrics", 2),
    (S, "cleanup", 2), (C, "cleanup", 2),
    ("RunCompleted", 2),
]
# fmt: on


@BOTH_DATABASES
def test_loops_and_conditions_write_exactly_the_expected_events(
    store: EventStore, home: Path, blobs: LocalBlobStore
) -> None:
    config = FakeConfig(steps=3, save_every=2)
    code = make_runner(store, home, config=config, blobs=blobs).start(created(RUN_ID, config))

    assert code == EXIT_OK
    assert history(store) == THREE_STEPS_SAVING_EVERY_TWO
    edges = [(e.payload["source"], e.payload["dest"]) for e in store.read(RUN_ID) if e.type == S]
    assert edges == [
        ("start", "setup"),
        ("setup", "get_batch"),
        ("get_batch", "train"),
        ("train", "log_step_metrics"),
        ("log_step_metrics", "get_batch"),
        ("get_batch", "train"),
        ("train", "log_step_metrics"),
        ("log_step_metrics", "save_checkpoint"),
        ("save_checkpoint", "get_batch"),
        ("get_batch", "train"),
        ("train", "log_step_metrics"),
        ("log_step_metrics", "cleanup"),
    ]
    state = folded(store)
    assert (state.status, state.machine_state, state.step) == ("completed", "completed", 2)
    assert state.step_metrics == {
        0: {"train_mean_nll": 1.0},
        1: {"train_mean_nll": 0.5},
        2: {"train_mean_nll": 1 / 3},
    }
    assert [(c.step, c.machine_state) for c in state.checkpoints] == [(2, "save_checkpoint")]
    assert state.final_metrics == {"train_mean_nll": 1 / 3}
    row = store.get_run(RUN_ID)
    assert row is not None and row.status == "completed"
    assert store.get_lease(RUN_ID) is None


def test_without_the_condition_the_conditional_stage_writes_nothing(
    store: EventStore, home: Path
) -> None:
    config = FakeConfig(steps=2, save_every=0)
    assert make_runner(store, home, config=config).start(created(RUN_ID, config)) == EXIT_OK
    assert history(store) == [
        ("RunCreated",),
        ("AttemptStarted", 1),
        (S, "setup", 0), (C, "setup", 0),
        (S, "get_batch", 0), (C, "get_batch", 0),
        (S, "train", 0), (C, "train", 0),
        (S, "log_step_metrics", 0), (C, "log_step_metrics", 0),
        (S, "get_batch", 0), (C, "get_batch", 1),
        (S, "train", 1), (C, "train", 1),
        (S, "log_step_metrics", 1), (C, "log_step_metrics", 1),
        (S, "cleanup", 1), (C, "cleanup", 1),
        ("RunCompleted", 1),
    ]  # fmt: skip


def test_a_failing_stage_ends_the_run_with_stage_failed_and_run_failed(
    store: EventStore, home: Path, telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    def explode(ctx: StageContext) -> None:
        raise ValueError("loss is nan\nat batch 1")

    config = FakeConfig(steps=3)
    runner = make_runner(
        store, home, config=config, hooks={("train", 1): explode}, telemetry=telemetry
    )
    code = runner.start(created(RUN_ID, config))

    assert code == EXIT_FAILED == 1
    events = store.read(RUN_ID)
    assert history(store)[-5:] == [
        (S, "get_batch", 0), (C, "get_batch", 1),
        (S, "train", 1),
        ("StageFailed", "train", 1),
        ("RunFailed",),
    ]  # fmt: skip
    assert events[-2].payload == {
        "stage": "train",
        "step": 1,
        "epoch": 0,
        "error_type": "ValueError",
        "message": "loss is nan",
    }
    assert events[-1].payload == {
        "error_type": "ValueError",
        "message": "loss is nan",
        "stage": "train",
        "step": 1,
    }
    state = folded(store)
    assert (state.status, state.machine_state) == ("failed", "failed")
    assert state.error == ("ValueError", "loss is nan")
    assert store.get_lease(RUN_ID) is None

    trains = [s for s in exporter.get_finished_spans() if s.name == "train"]
    assert [s.attributes["kitchen.step"] for s in trains if s.attributes] == [0, 1]
    ok, failed = trains
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]
    attrs = failed.events[0].attributes or {}
    assert attrs["exception.type"] == "ValueError"
    assert str(attrs["exception.message"]).startswith("loss is nan")


@BOTH_DATABASES
def test_a_cancel_request_stops_the_run_at_the_next_check(store: EventStore, home: Path) -> None:
    def cancel(ctx: StageContext) -> None:
        store.request_cancel(ctx.run_id)

    config = FakeConfig(steps=6)
    runner = make_runner(store, home, config=config, hooks={("get_batch", 3): cancel})
    code = runner.start(created(RUN_ID, config))

    assert code == EXIT_FAILED
    # get_batch of step 3 asked for it; the check before train of step 3 honours it.
    assert history(store)[-5:] == [
        (S, "log_step_metrics", 2), (C, "log_step_metrics", 2),
        (S, "get_batch", 2), (C, "get_batch", 3),
        ("RunCancelled", 3),
    ]  # fmt: skip
    assert store.read(RUN_ID)[-1].payload == {"reason": "cancel requested", "step": 3}
    state = folded(store)
    assert (state.status, state.machine_state) == ("cancelled", "cancelled")
    assert state.attempts[-1].ended == "cancelled"
    assert store.cancel_requested(RUN_ID) is False
    assert store.get_lease(RUN_ID) is None


@BOTH_DATABASES
def test_hot_stages_share_one_commit_per_step_and_other_stages_commit_first(
    store: EventStore, home: Path, blobs: LocalBlobStore
) -> None:
    seen: dict[tuple[str, int], tuple[int, tuple[Any, ...]]] = {}

    def look(ctx: StageContext) -> None:
        committed = history(store)
        seen[(ctx.stage.name, ctx.state.step)] = (len(committed), committed[-1])

    points = [("train", 0), ("train", 1), ("save_checkpoint", 1), ("train", 2), ("cleanup", 2)]
    config = FakeConfig(steps=3, save_every=2)
    runner = make_runner(store, home, config=config, blobs=blobs, hooks=dict.fromkeys(points, look))
    assert runner.start(created(RUN_ID, config)) == EXIT_OK

    # Seqs as in THREE_STEPS_SAVING_EVERY_TWO. Inside a hot stage, the events of its own step
    # (get_batch's two, the stage's StageStarted) are not committed yet; the previous step is.
    # A stage that is not hot is on record, StageStarted included, before it runs.
    assert seen == {
        ("train", 0): (4, (C, "setup", 0)),
        ("train", 1): (10, (C, "log_step_metrics", 0)),
        ("save_checkpoint", 1): (17, (S, "save_checkpoint", 1)),
        ("train", 2): (19, ("CheckpointSaved", 2)),
        ("cleanup", 2): (26, (S, "cleanup", 2)),
    }
    assert len(store.read(RUN_ID)) == 28


@pytest.mark.parametrize("stage", ["train", "log_step_metrics"])
def test_a_crash_inside_a_hot_stage_loses_only_the_step_in_flight(
    store: EventStore, home: Path, stage: str
) -> None:
    class Crash(BaseException):
        """Stands for the process dying: nothing in the runner may catch it."""

    def crash(ctx: StageContext) -> None:
        raise Crash

    config = FakeConfig(steps=3)
    runner = make_runner(store, home, config=config, hooks={(stage, 1): crash})
    with pytest.raises(Crash):
        runner.start(created(RUN_ID, config))

    assert history(store) == THREE_STEPS_SAVING_EVERY_TWO[:10]
    assert folded(store).status == "running"
    assert store.get_lease(RUN_ID) is None


def test_an_attempt_imports_no_training_library(sqlite_url: str, home: Path) -> None:
    """A run whose stages need no torch (a remote trainer, these fakes) must not pay for it."""
    script = "\n".join(
        [
            "import sys",
            f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
            "import fakeflow",
            f"code = fakeflow.main(['start', {sqlite_url!r}, {str(home)!r}, {RUN_ID!r}])",
            "heavy = ('torch', 'transformers', 'peft', 'datasets')",
            "print(sorted(m for m in heavy if m in sys.modules))",
            "sys.exit(code)",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )

    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.strip() == "[]"
    with open_store(sqlite_url) as store:
        attempt_started = store.read(RUN_ID)[1]
    assert attempt_started.type == "AttemptStarted"
    assert attempt_started.payload["torch_threads"] is None
