"""`kitchen replay`: timeline, --at, --json, --verify (passing and failing), no side effects."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from kitchen.cli.replay import details
from kitchen.engine import events as ev
from kitchen.store import EventStore
from kitchen.testing.cli import Kitchen, one_line_error

HOST = socket.gethostname()
TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"


def _events(stdout: str) -> dict[int, str]:
    """Timeline lines by seq, with the timestamp checked and cut out."""
    lines = stdout.split("\n\n")[0].splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "(UTC)", "TYPE", "STAGE", "STEP", "DETAILS"]
    out = {}
    for line in lines[1:]:
        m = re.fullmatch(rf"\s*(\d+)  {TIME}  (.*)", line)
        assert m, line
        out[int(m[1])] = " ".join(m[2].split())
    return out


def test_the_timeline_marks_superseded_work(kitchen: Kitchen, runs_db: None) -> None:
    r = kitchen("replay", "again")
    assert (r.code, r.stderr) == (0, "")
    assert _events(r.stdout) == {
        1: "RunCreated recipe=sl_basic workflow=supervised seed=7",
        2: f"AttemptStarted attempt=1 worker={HOST}:4242:ab",
        3: "StageCompleted optim_step 0 (0.250s)",
        4: "StageCompleted log_step_metrics 0 step 0: train_mean_nll=3.0000 (0.250s)",
        5: "CheckpointSaved 1 step-000001 uri=again/checkpoints/step-000001 bytes=20",
        6: "StageStarted get_batch 1 start -> get_batch [superseded]",
        7: "StageCompleted optim_step 1 (0.250s) [superseded]",
        8: "StageCompleted log_step_metrics 1 step 1: train_mean_nll=2.7500 (0.250s) [superseded]",
        9: f"AttemptStarted attempt=2 worker={HOST}:4343:ab resumed_from=seq 5",
        10: "RunResumed 1 attempt=2 from=seq 5 state=save_checkpoint",
        11: "StageCompleted optim_step 1 (0.250s)",
        12: "StageCompleted log_step_metrics 1 step 1: train_mean_nll=2.5000 (0.250s)",
        13: "DeterminismMismatch 1 train_mean_nll: logged 2.7500 (seq 8), replayed 2.5000",
        14: "AttemptInterrupted 1 attempt=2 signal=SIGTERM",
    }
    state = r.stdout.split("\n\n", 1)[1].splitlines()
    assert state[:4] == [
        "state at seq 14 (the end):",
        "  run        again",
        "  recipe     sl_basic (workflow supervised)",
        "  status     interrupted",
    ]


def test_stage_outputs_evaluation_and_completion(kitchen: Kitchen, runs_db: None) -> None:
    timeline = _events(kitchen("replay", "done").stdout)
    assert timeline[4] == "StageCompleted optim_step 0 learning_rate=0.0001 (0.250s)"
    assert timeline[9].startswith("StageCompleted save_final_weights 2 bytes=11 sha256=")
    assert timeline[9].endswith(" uri=done/final (0.250s)")
    assert timeline[10] == (
        "StageCompleted evaluate 2 test/accuracy=0.5000 test/examples=8 test/nll=1.7500 (0.250s)"
    )
    assert (
        timeline[11] == "RunCompleted 2 test/accuracy=0.5000 test/nll=1.7500 train_mean_nll=2.0000"
    )


def test_at_folds_only_up_to_that_seq(kitchen: Kitchen, runs_db: None) -> None:
    r = kitchen("replay", "again", "--at", "8")
    assert r.code == 0
    timeline = _events(r.stdout)
    assert sorted(timeline) == [1, 2, 3, 4, 5, 6, 7, 8]
    # Nothing is superseded yet at seq 8: the resume that supersedes them comes later.
    assert not any("[superseded]" in line for line in timeline.values())
    state = r.stdout.split("\n\n", 1)[1].splitlines()
    assert state[0] == "state at seq 8:"
    assert "  status     running" in state
    assert "    last step (1)  train_mean_nll=2.7500" in state


def test_at_outside_the_run_is_one_line_exit_2(kitchen: Kitchen, runs_db: None) -> None:
    for seq in ("15", "0"):
        r = kitchen("replay", "again", "--at", seq)
        assert r.code == 2
        assert one_line_error(r) == (
            f"kitchen: error: --at {seq} is outside run again, whose events are seq 1 to 14; "
            "pick a seq in that range"
        )


def test_json(kitchen: Kitchen, runs_db: None) -> None:
    out = json.loads(kitchen("replay", "again", "--json").stdout)
    events = out["events"]
    assert [e["seq"] for e in events] == list(range(1, 15))
    assert [e["seq"] for e in events if e["superseded"]] == [6, 7, 8]
    assert events[7] == {
        "seq": 8,
        "recorded_at": events[7]["recorded_at"],
        "type": "StageCompleted",
        "schema_version": 1,
        "stage": "log_step_metrics",
        "step": 1,
        "superseded": True,
        "payload": {
            "stage": "log_step_metrics",
            "dest": "log_step_metrics",
            "step": 1,
            "epoch": 0,
            "outputs": {"steps": {"1": {"train_mean_nll": 2.75}}},
            "duration_s": 0.25,
        },
        "hash": events[7]["hash"],
    }
    assert re.fullmatch(r"[0-9a-f]{64}", events[7]["hash"])
    state = out["state"]
    assert (state["status"], state["last_seq"], state["optim_steps"]) == ("interrupted", 14, [0, 1])
    assert state["superseded_metrics"] == {"1": [8, {"train_mean_nll": 2.75}]}
    assert "verified" not in out
    early = json.loads(kitchen("replay", "again", "--at", "8", "--json").stdout)
    assert len(early["events"]) == 8
    assert (early["state"]["last_seq"], early["state"]["superseded"]) == (8, [])
    assert early["state"]["step_metrics"] == {
        "0": {"train_mean_nll": 3.0},
        "1": {"train_mean_nll": 2.75},
    }


def test_verify_passes_on_an_intact_run(kitchen: Kitchen, runs_db: None) -> None:
    done = kitchen("replay", "done", "--verify")
    assert (done.code, done.stderr) == (0, "")
    assert done.stdout.splitlines()[-1] == "verified: 11 events, 1 checkpoints, final adapter"
    again = kitchen("replay", "again", "--verify")
    assert again.stdout.splitlines()[-1] == "verified: 14 events, 1 checkpoints"
    out = json.loads(kitchen("replay", "done", "--verify", "--json").stdout)
    assert out["verified"] == {"events": 11, "checkpoints": 1, "final_adapter": True}


def test_verify_fails_on_an_altered_payload(
    kitchen: Kitchen, runs_db: None, store: EventStore
) -> None:
    with store.engine.begin() as conn:
        changed = conn.execute(
            sa.text(
                "UPDATE events SET payload = replace(payload, '2.75', '1.25') "
                "WHERE run_id = 'again' AND seq = 8"
            )
        ).rowcount
    assert changed == 1
    r = kitchen("replay", "again", "--verify")
    assert r.code == 1
    assert one_line_error(r) == (
        "kitchen: error: hash chain broken at seq 8: hash does not match its contents "
        "(the row was altered)"
    )
    assert r.stdout == ""


def test_verify_reports_an_unreadable_altered_row_as_damage(
    kitchen: Kitchen, runs_db: None, store: EventStore
) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET payload = '{}' WHERE run_id = 'again' AND seq = 3"))
    plain = kitchen("replay", "again")
    assert plain.code == 1
    assert one_line_error(plain) == (
        "kitchen: error: StageCompleted payload is invalid at stage: Field required"
    )
    audited = kitchen("replay", "again", "--verify")
    assert audited.code == 1
    assert one_line_error(audited) == (
        "kitchen: error: hash chain broken at seq 3: hash does not match its contents "
        "(the row was altered)"
    )


def test_verify_fails_on_a_corrupt_checkpoint_blob(
    kitchen: Kitchen, runs_db: None, home: Path
) -> None:
    (home / "again/checkpoints/step-000001/weights.bin").write_bytes(b"flipped bits")
    r = kitchen("replay", "again", "--verify")
    assert r.code == 1
    line = one_line_error(r)
    m = re.fullmatch(
        r"kitchen: error: checkpoint step-000001 \(seq 5\): sha256 mismatch "
        r"\(recorded ([0-9a-f]{12}), found ([0-9a-f]{12})\)",
        line,
    )
    assert m and m[1] != m[2], line


def test_verify_fails_on_a_missing_final_adapter(
    kitchen: Kitchen, runs_db: None, home: Path
) -> None:
    for f in (home / "done/final").iterdir():
        f.unlink()
    (home / "done/final").rmdir()
    r = kitchen("replay", "done", "--verify")
    assert r.code == 1
    assert one_line_error(r) == (
        f"kitchen: error: final adapter (seq 9): blob done/final is missing under {home}"
    )


def test_replay_writes_nothing(
    kitchen: Kitchen, runs_db: None, store: EventStore, home: Path
) -> None:
    before = _snapshot(store, home)
    for args in (("again",), ("gone", "--verify"), ("done", "--at", "3", "--json")):
        assert kitchen("replay", *args).code == 0
    assert _snapshot(store, home) == before


def test_unknown_run_is_one_line_exit_2(kitchen: Kitchen, runs_db: None, sqlite_url: str) -> None:
    r = kitchen("replay", "nope", "--verify")
    assert r.code == 2
    assert one_line_error(r) == f"kitchen: error: no run 'nope' in {sqlite_url}; see `kitchen runs`"


def _snapshot(store: EventStore, home: Path) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    with store.engine.connect() as conn:
        for name in ("events", "runs", "leases", "cancel_requests"):
            tables[name] = sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {name}"))))
    files = sorted(
        (str(p.relative_to(home)), p.stat().st_mtime_ns) for p in home.rglob("*") if p.is_file()
    )
    return {"tables": tables, "files": files}


def test_details_of_the_events_the_histories_above_lack() -> None:
    assert (
        details(
            ev.StageFailed(
                stage="forward_backward",
                step=3,
                epoch=0,
                error_type="TrainingDiverged",
                message="NaN",
            )
        )
        == "TrainingDiverged: NaN"
    )
    assert details(ev.RunFailed(error_type="OSError", message="disk full")) == "OSError: disk full"
    assert details(ev.RunCancelled(reason="cancelled by user", step=4)) == "cancelled by user"
    assert (
        details(
            ev.CheckpointInvalidated(
                checkpoint_seq=42, uri="r/c/step-000010", reason="sha256 mismatch"
            )
        )
        == "checkpoint seq 42 uri=r/c/step-000010 (sha256 mismatch)"
    )
    assert (
        details(ev.CheckpointDeleted(checkpoint_seq=42, uri="r/c/step-000010", step=10))
        == "checkpoint seq 42 uri=r/c/step-000010"
    )
    assert (
        details(
            ev.StageCompleted(
                stage="save_checkpoint",
                dest="save_checkpoint",
                step=10,
                epoch=0,
                outputs={"name": "step-000010", "deleted": ["step-000005"], "bytes": 2048},
                duration_s=1.5,
            )
        )
        == "bytes=2048  name=step-000010  (1.500s)"
    )
