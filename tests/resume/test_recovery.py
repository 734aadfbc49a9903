"""Recovery beyond a single kill: corrupt checkpoints, racing resumes, determinism checks,
retention, and `kitchen recover`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen, one_line_error
from kitchen.testing.runs import SMALL_SL_CONFIG as CONFIG
from kitchen.testing.runs import STEPS, adapter_sha, crash_sl, replay_json

KILLED = -9


@pytest.mark.slow
def test_corrupt_newest_checkpoint_falls_back(tmp_path: Path, reference: str) -> None:
    home = tmp_path / "home"
    crash_sl(home, "corrupt", "stage:get_batch:after@13")  # checkpoints at 5 and 10 exist
    weights = home / "corrupt" / "checkpoints" / "step-000010" / "state" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    kitchen = make_kitchen(home)
    r = kitchen("resume", "corrupt")
    assert r.code == 0, r.stderr[-800:]
    assert adapter_sha(home, "corrupt") == reference
    doc = replay_json(kitchen, "corrupt")
    invalidated = [e for e in doc["events"] if e["type"] == "CheckpointInvalidated"]
    assert [e["payload"]["uri"] for e in invalidated] == ["corrupt/checkpoints/step-000010"]
    resumed = [e["payload"] for e in doc["events"] if e["type"] == "RunResumed"]
    assert [p["from_step"] for p in resumed] == [5]
    assert kitchen("replay", "corrupt", "--verify").code == 0


@pytest.mark.slow
def test_two_resumes_released_together_one_proceeds(tmp_path: Path, reference: str) -> None:
    home = tmp_path / "home"
    crash_sl(home, "race", "stage:get_batch:after@8")
    go = tmp_path / "go"
    wait_then_resume = (
        "import os, sys, time\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
        "from kitchen.cli import main\n"
        "sys.exit(main(['resume', 'race']))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env["KITCHEN_HOME"] = str(home)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", wait_then_resume],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(4)  # both have imported kitchen and are polling the barrier
    go.write_text("go")
    results = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], results
    loser = next(err for p, (_, err) in zip(procs, results, strict=True) if p.returncode == 3)
    lines = [ln for ln in loser.splitlines() if ln.strip() and not ln.startswith("race")]
    assert len(lines) == 1 and lines[0].startswith("kitchen: error: "), loser
    assert adapter_sha(home, "race") == reference
    doc = replay_json(make_kitchen(home), "race")
    attempts = [e["payload"]["attempt"] for e in doc["events"] if e["type"] == "AttemptStarted"]
    assert attempts == [1, 2]
    assert doc["state"]["optim_steps"] == list(range(STEPS))


@pytest.mark.slow
def test_a_perturbed_reexecuted_step_is_a_determinism_mismatch(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # Steps 5..7 logged past checkpoint 5: every step commits (the small config's steps can be
    # faster than the default commit window, and a step not on record is not compared).
    every_step = {"KITCHEN_COMMIT_WINDOW_MS": "0"}
    crash_sl(home, "perturbed", "stage:get_batch:after@9", env=every_step)
    kitchen = make_kitchen(home)
    r = kitchen("resume", "perturbed", extra_env={"KITCHEN_PERTURB_STEP": "6"})
    assert r.code == 0, r.stderr[-800:]
    doc = replay_json(kitchen, "perturbed")
    mismatches = [e["payload"] for e in doc["events"] if e["type"] == "DeterminismMismatch"]
    assert [m["step"] for m in mismatches] == [6]
    assert mismatches[0]["logged"] != mismatches[0]["replayed"]
    timeline = kitchen("replay", "perturbed", "--all").stdout  # not among the last 40
    assert "DeterminismMismatch" in timeline


@pytest.mark.slow
def test_retention_keeps_the_last_checkpoints(tmp_path: Path) -> None:
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    r = kitchen("run", "sl_basic", *CONFIG, "keep_checkpoints=2", "--run-id", "kept")
    assert r.code == 0, r.stderr[-800:]
    on_disk = sorted(p.name for p in (home / "kept" / "checkpoints").iterdir())
    assert on_disk == ["step-000015", "step-000020"]
    doc = replay_json(kitchen, "kept")
    deleted = [e["payload"]["step"] for e in doc["events"] if e["type"] == "CheckpointDeleted"]
    assert deleted == [5, 10]
    assert kitchen("replay", "kept", "--verify").code == 0


def _interrupt(home: Path, run_id: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env["KITCHEN_HOME"] = str(home)
    proc = subprocess.Popen(
        ["kitchen", "run", "sl_basic", *CONFIG, "--run-id", run_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "checkpoint step-000005 saved" in line:
            proc.send_signal(signal.SIGTERM)
            break
    proc.communicate(timeout=300)
    assert proc.returncode == 143  # preempted: a checkpoint of the last finished step


@pytest.mark.slow
def test_recover_resumes_crashed_and_interrupted_runs(tmp_path: Path, reference: str) -> None:
    home = tmp_path / "home"
    crash_sl(home, "crashed-a", "stage:optim_step:before@4")
    crash_sl(home, "crashed-b", "checkpoint:after_blob@2")
    _interrupt(home, "stopped")
    kitchen = make_kitchen(home)
    r = kitchen("recover", "--max-attempts", "3", "--backoff", "0.1")
    assert r.code == 0, r.stderr[-1500:]
    for run_id in ("crashed-a", "crashed-b", "stopped"):
        assert adapter_sha(home, run_id) == reference
        assert replay_json(kitchen, run_id)["state"]["status"] == "completed"


@pytest.mark.slow
def test_recover_gives_up_on_a_run_that_always_crashes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    crash_sl(home, "doomed", "stage:init_session:after")
    kitchen = make_kitchen(home)
    r = kitchen(
        "recover",
        "--max-attempts",
        "3",
        "--backoff",
        "0.1",
        extra_env={"KITCHEN_FAULT": "stage:init_session:after"},
        timeout=300,
    )
    assert r.code == 1
    assert "doomed: 3 attempts, giving up" in r.stderr
    doc = replay_json(kitchen, "doomed")
    attempts = [e["payload"]["attempt"] for e in doc["events"] if e["type"] == "AttemptStarted"]
    assert attempts == [1, 2, 3]


def test_resume_of_an_unknown_run_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    r = kitchen("resume", "nothing-here")
    assert r.code == 2
    assert "nothing-here" in one_line_error(r)
