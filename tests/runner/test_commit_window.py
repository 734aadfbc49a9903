"""Group commit across fast steps: the commit window.

A step boundary commits only once ``KITCHEN_COMMIT_WINDOW_MS`` has passed since the last
commit; everything that is not a per-step stage commits at once, and so does the end of an
attempt. Read from the real SQLite log: a batch shares one ``recorded_at``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fakeflow import RUN_ID, FakeConfig, created, make_runner
from opentelemetry.trace import INVALID_SPAN

from kitchen.engine import events as ev
from kitchen.engine.runner import EXIT_OK
from kitchen.engine.telemetry import Telemetry
from kitchen.engine.unit_of_work import UnitOfWork, window_from_env
from kitchen.errors import ConfigError
from kitchen.store import EventStore


def _step_started(seq: int) -> ev.StageStarted:
    return ev.StageStarted(stage="s", source="a", dest="b", step=seq, epoch=0, attempt=1)


def _batches(store: EventStore, stage: str) -> set[object]:
    """The commits (one recorded_at each) that carried ``stage``'s StageStarted events."""
    return {
        e.recorded_at
        for e in store.read(RUN_ID)
        if e.type == "StageStarted" and e.payload["stage"] == stage
    }


def test_a_step_boundary_inside_the_window_does_not_commit(store: EventStore) -> None:
    uow = UnitOfWork(store, RUN_ID, window_s=3600.0)
    uow.record(created(RUN_ID, FakeConfig()))
    uow.flush_due()  # nothing committed yet: the window starts open
    assert [e.seq for e in store.read(RUN_ID)] == [1]

    uow.record(_step_started(0))
    uow.record(_step_started(1))
    uow.flush_due()  # 1 hour has not passed
    assert [e.seq for e in store.read(RUN_ID)] == [1]
    assert uow.state.last_seq == 3  # folded in memory all the same

    uow.flush()  # anything but a step boundary commits at once
    assert [e.seq for e in store.read(RUN_ID)] == [1, 2, 3]


def test_a_window_of_zero_commits_at_every_step_boundary(store: EventStore) -> None:
    uow = UnitOfWork(store, RUN_ID, window_s=0.0)
    uow.record(created(RUN_ID, FakeConfig()))
    uow.flush_due()
    uow.record(_step_started(0))
    uow.flush_due()
    assert [e.seq for e in store.read(RUN_ID)] == [1, 2]


@pytest.mark.parametrize(("window_s", "commits"), [(0.0, 6), (3600.0, 1)])
def test_fast_steps_share_commits_within_the_window(
    store: EventStore, home: Path, window_s: float, commits: int
) -> None:
    config = FakeConfig(steps=6)
    runner = make_runner(store, home, config=config, commit_window_s=window_s)
    assert runner.start(created(RUN_ID, config)) == EXIT_OK

    # window 0: each step's get_batch went out in a commit of its own (the next step's top);
    # a window of an hour: the first boundary committed and the rest waited for the attempt's
    # end, which commits whatever is left.
    assert len(_batches(store, "get_batch")) == commits
    assert store.read(RUN_ID)[-1].type == "RunCompleted"
    optim = [e.payload.get("optim_step") for e in store.read(RUN_ID) if e.type == "StageCompleted"]
    assert sorted(s for s in optim if s is not None) == [0, 1, 2, 3, 4, 5]


def test_the_window_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KITCHEN_COMMIT_WINDOW_MS", raising=False)
    assert window_from_env() == 0.05
    monkeypatch.setenv("KITCHEN_COMMIT_WINDOW_MS", "0")
    assert window_from_env() == 0.0
    monkeypatch.setenv("KITCHEN_COMMIT_WINDOW_MS", "250")
    assert window_from_env() == 0.25
    for bad in ("soon", "-1", "nan", "1e9"):
        monkeypatch.setenv("KITCHEN_COMMIT_WINDOW_MS", bad)
        with pytest.raises(ConfigError, match="KITCHEN_COMMIT_WINDOW_MS") as info:
            window_from_env()
        assert "\n" not in str(info.value)


def test_stage_spans_are_not_built_when_nothing_receives_them() -> None:
    quiet = Telemetry()
    assert not quiet.recording
    assert quiet.stage_span("get_batch", {"kitchen.step": 0}) is INVALID_SPAN
    quiet.shutdown()
