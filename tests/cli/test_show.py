"""`kitchen show`: a run folded from hand-written events, as text and as JSON."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

from kitchen.engine import events as ev
from kitchen.testing.cli import Kitchen, one_line_error

HOST = socket.gethostname()


def _section(stdout: str, title: str) -> list[str]:
    """The lines of one section (``title`` up to the next blank line), title excluded."""
    lines = stdout.splitlines()
    start = lines.index(title) + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def test_a_completed_run(kitchen: Kitchen, runs_db: None, home: Path) -> None:
    r = kitchen("show", "done")
    assert (r.code, r.stderr) == (0, "")
    lines = r.stdout.splitlines()
    assert lines[:4] == [
        "run        done",
        "recipe     sl_basic (workflow supervised)",
        "status     completed",
        "step       2 (epoch 0, machine state completed)",
    ]
    assert "seed       7" in lines
    assert _section(r.stdout, "config (as recorded):") == [
        '  dataset        "arith-chat"',
        "  learning_rate  0.0001",
        "  max_steps      2",
    ]
    attempts = [line.split() for line in _section(r.stdout, "attempts:")]
    assert attempts[0] == [
        "#",
        "WORKER",
        "HOST",
        "PID",
        "PROCS",
        "STARTED",
        "(UTC)",
        "ENDED",
        "RESUMED",
        "FROM",
    ]
    assert attempts[1][:5] + attempts[1][7:] == [
        "1",
        f"{HOST}:4242:ab",
        HOST,
        "4242",
        "1",
        "completed",
        "-",
    ]
    checkpoints = [line.split() for line in _section(r.stdout, "checkpoints:")]
    assert checkpoints == [
        ["NAME", "STEP", "STATUS", "SEQ", "URI"],
        ["step-000001", "1", "live", "6", "done/checkpoints/step-000001"],
    ]
    assert _section(r.stdout, "metrics:") == [
        "  final           test/accuracy=0.5000  test/nll=1.7500  train_mean_nll=2.0000",
        "  last step (1)   train_mean_nll=2.0000",
        "  eval at step 2  test/accuracy=0.5000  test/examples=8  test/nll=1.7500",
    ]
    assert _section(r.stdout, "paths:") == [
        f"  run folder     {home}/done",
        f"  final adapter  {home}/done/final",
    ]
    assert lines[-1] == "replay: kitchen replay done"


def test_a_resumed_run_shows_attempts_mismatches_and_the_resume_hint(
    kitchen: Kitchen, runs_db: None
) -> None:
    r = kitchen("show", "again")
    assert r.code == 0
    assert "status     interrupted" in r.stdout.splitlines()
    attempts = [line.split() for line in _section(r.stdout, "attempts:")][1:]
    assert [a[:5] + a[7:] for a in attempts] == [
        ["1", f"{HOST}:4242:ab", HOST, "4242", "1", "crashed", "-"],
        ["2", f"{HOST}:4343:ab", HOST, "4343", "1", "interrupted", "step-000001", "(seq", "5)"],
    ]
    assert _section(
        r.stdout, "determinism mismatches (re-executed step differs from the logged one):"
    ) == ["  step 1  train_mean_nll: logged 2.7500, replayed 2.5000 (seq 13)"]
    assert "superseded seqs (redone after a resume): 6-8" in r.stdout.splitlines()
    assert r.stdout.splitlines()[-2:] == [
        "replay: kitchen replay again",
        "resume: kitchen resume again",
    ]


def test_a_dead_worker_shows_as_crashed_and_a_live_one_as_running(
    kitchen: Kitchen, runs_db: None
) -> None:
    gone = kitchen("show", "gone").stdout.splitlines()
    assert "status     crashed (the log says running), in stage get_batch" in gone
    assert [line.split()[7] for line in _section("\n".join(gone), "attempts:")[1:]] == ["crashed"]
    busy = kitchen("show", "busy").stdout.splitlines()
    assert "status     running, in stage get_batch" in busy
    assert "attempts: none yet" in kitchen("show", "fresh").stdout.splitlines()


def test_a_failed_run_shows_its_error(kitchen: Kitchen, add_events: Callable[..., None]) -> None:
    add_events(
        "broke",
        ev.RunCreated(
            recipe="sl_basic",
            workflow="supervised",
            config={},
            config_hash="0",
            seed=0,
            versions={},
            run_dir="broke",
        ),
        ev.AttemptStarted(attempt=1, worker="w", host="elsewhere", pid=1),
        ev.StageFailed(
            stage="forward_backward",
            step=3,
            epoch=0,
            error_type="TrainingDiverged",
            message="loss is NaN at step 3",
        ),
        ev.RunFailed(
            error_type="TrainingDiverged",
            message="loss is NaN at step 3",
            stage="forward_backward",
            step=3,
        ),
    )
    lines = kitchen("show", "broke").stdout.splitlines()
    assert "status     failed" in lines
    assert "error: TrainingDiverged: loss is NaN at step 3" in lines
    assert "config (as recorded): empty" in lines
    assert "metrics: none yet" in lines


def test_json(kitchen: Kitchen, runs_db: None, home: Path) -> None:
    r = kitchen("show", "again", "--json")
    assert r.code == 0
    out = json.loads(r.stdout)
    assert out["paths"] == {"run_dir": f"{home}/again", "final_adapter": None}
    assert out["replay"] == "kitchen replay again"
    state = out["state"]
    assert (state["status"], state["displayed_status"], state["last_seq"]) == (
        "interrupted",
        "interrupted",
        14,
    )
    assert state["superseded"] == [[6, 8]]
    assert state["step_metrics"] == {"0": {"train_mean_nll": 3.0}, "1": {"train_mean_nll": 2.5}}
    assert state["superseded_metrics"] == {"1": [8, {"train_mean_nll": 2.75}]}
    assert [(a["number"], a["resumed_from"], a["ended"]) for a in state["attempts"]] == [
        (1, None, "crashed"),
        (2, 5, "interrupted"),
    ]
    assert state["created_at"].endswith("+00:00")
    assert state["checkpoints"][0]["uri"] == "again/checkpoints/step-000001"
    gone = json.loads(kitchen("show", "gone", "--json").stdout)["state"]
    assert (gone["status"], gone["displayed_status"]) == ("running", "crashed")


def test_unknown_and_invalid_run_ids_are_one_line_exit_2(
    kitchen: Kitchen, runs_db: None, sqlite_url: str
) -> None:
    r = kitchen("show", "nope")
    assert r.code == 2
    assert one_line_error(r) == f"kitchen: error: no run 'nope' in {sqlite_url}; see `kitchen runs`"
    bad = kitchen("show", "../etc")
    assert bad.code == 2
    assert one_line_error(bad).startswith("kitchen: error: invalid run id '../etc'")
