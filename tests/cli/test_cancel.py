"""`kitchen cancel`: append RunCancelled when nobody holds the run, ask the runner otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from kitchen.cli import main
from kitchen.engine import events as ev
from kitchen.store import EventStore, NewEvent
from kitchen.testing.cli import Kitchen, one_line_error


@pytest.mark.parametrize(
    ("run_id", "was", "seq", "step"),
    [("gone", "crashed", 4, 0), ("fresh", "created", 2, 0), ("again", "interrupted", 15, 1)],
)
def test_a_run_nobody_holds_is_cancelled_at_once(
    kitchen: Kitchen, runs_db: None, store: EventStore, run_id: str, was: str, seq: int, step: int
) -> None:
    r = kitchen("cancel", run_id)
    assert (r.code, r.stderr) == (0, "")
    assert r.stdout == f"run {run_id} cancelled (it was {was} at step {step})\n"
    last = store.read(run_id)[-1]
    assert (last.seq, last.type, last.payload) == (
        seq,
        "RunCancelled",
        {"reason": "cancelled by user", "step": step},
    )
    assert store.get_run(run_id).status == "cancelled"  # type: ignore[union-attr]
    assert not store.cancel_requested(run_id)


def test_a_run_with_a_live_runner_gets_a_request(
    kitchen: Kitchen, runs_db: None, store: EventStore
) -> None:
    r = kitchen("cancel", "busy")
    assert r.code == 0
    assert "will stop at a stage boundary within about 5 seconds" in r.stdout
    assert store.cancel_requested("busy")
    assert store.last_seq("busy") == 3  # the runner records RunCancelled itself


def test_a_terminal_run_is_refused_with_exit_2(
    kitchen: Kitchen, runs_db: None, store: EventStore
) -> None:
    r = kitchen("cancel", "done")
    assert r.code == 2
    assert one_line_error(r) == (
        "kitchen: error: run done is already completed; there is nothing to cancel"
    )
    assert store.last_seq("done") == 11
    again = kitchen("cancel", "gone"), kitchen("cancel", "gone")
    assert [x.code for x in again] == [0, 2]
    assert one_line_error(again[1]).endswith(
        "run gone is already cancelled; there is nothing to cancel"
    )


def test_unknown_run_is_one_line_exit_2(kitchen: Kitchen, runs_db: None, sqlite_url: str) -> None:
    r = kitchen("cancel", "nope")
    assert r.code == 2
    assert one_line_error(r) == f"kitchen: error: no run 'nope' in {sqlite_url}; see `kitchen runs`"


def test_a_worker_appending_meanwhile_makes_it_a_conflict_exit_3(
    runs_db: None,
    store: EventStore,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A worker resumes the crashed run between our fold and our append: we must not win."""
    monkeypatch.setenv("KITCHEN_DB_URL", sqlite_url)
    real_get_lease = EventStore.get_lease

    def worker_resumes_first(self: EventStore, run_id: str) -> Any:
        resumed = ev.AttemptStarted(attempt=2, worker="w:2:cd", host="elsewhere", pid=2)
        store.append(
            run_id,
            [NewEvent(resumed.type_name(), resumed.payload())],
            expected_seq=store.last_seq(run_id),
        )
        return real_get_lease(self, run_id)

    monkeypatch.setattr(EventStore, "get_lease", worker_resumes_first)
    assert main(["cancel", "gone"]) == 3
    err = capsys.readouterr().err
    assert err == (
        "kitchen: error: run gone changed while it was being cancelled (a worker appended to "
        "it); check `kitchen show gone` and cancel again\n"
    )
    assert [e.type for e in store.read("gone")][-1] == "AttemptStarted"
