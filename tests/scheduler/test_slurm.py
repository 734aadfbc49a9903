"""A kitchen run on 2 ranks under torchrun, submitted to a real SLURM with the sbatch script the
docs give (``docs/examples/kitchen.sbatch``), requeued twice mid-run:

1. the way a time limit ends a job: ``scancel --signal=USR1 --batch`` sends USR1 to the batch
   script alone, as ``--signal=B:USR1@120`` does; the script passes it to torchrun, torchrun to
   its workers (``--signals-to-handle``), kitchen saves a preemption checkpoint, and the script
   requeues its own job;
2. the way an administrator or a preemption does it: ``scontrol requeue``, which sends SIGTERM
   to every process of the job.

Each start runs the script from the top; the job completes, every optimizer step was applied
once (no step re-executed: each stop left a checkpoint of its last finished step), and the
adapter is byte-identical to an uninterrupted 2-rank run.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import make_kitchen, make_torchrun
from kitchen.testing.runs import adapter_sha, replay_json
from kitchen.testing.slurm import Slurm

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parents[2] / "docs" / "examples" / "kitchen.sbatch"
STEPS = 24
CONFIG = [
    f"max_steps={STEPS}",
    "save_every=8",
    "batch_size=8",
    "max_length=64",
    "eval_examples=4",
    "eval_max_tokens=4",
]
ENV = {"KITCHEN_DIST_TIMEOUT_S": "60", "OMP_NUM_THREADS": "1"}


def _starts(out: Path) -> list[str]:
    """The job's output, one chunk per start of the script."""
    text = out.read_text() if out.exists() else ""
    return re.split(r"^kitchen\.sbatch: start \d+ .*$", text, flags=re.M)[1:]


def _wait_for_step(out: Path, start: int, step: int, timeout_s: float = 240) -> None:
    """Until the ``start``-th start of the script (0-based) has logged ``step``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        chunks = _starts(out)
        if len(chunks) > start:
            done = [int(n) for n in re.findall(rf"^step (\d+)/{STEPS}\b", chunks[start], re.M)]
            if done and max(done) >= step:
                return
        time.sleep(0.1)
    raise AssertionError(f"start {start} never reached step {step}:\n{out.read_text()[-3000:]}")


def _events(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in doc["events"] if e["type"] == kind]


def test_a_requeued_job_completes_byte_identical_with_every_step_applied_once(
    slurm: Slurm, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    r = make_torchrun(reference, nproc=2)(
        "run", "sl_basic", *CONFIG, "--run-id", "ref", timeout=600, extra_env=ENV
    )
    assert r.code == 0, r.stderr[-2000:]

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITCHEN_", "PET_"))}
    env.update(ENV, KITCHEN_HOME=str(home), NPROC="2")
    out = tmp_path / "job.out"
    job = slurm.sbatch(SCRIPT, "sl_basic", *CONFIG, env=env, out=out)
    run_id = f"job-{job}"

    _wait_for_step(out, 0, 4)
    slurm.run("scancel", "--signal=USR1", "--batch", str(job))  # the time limit is near
    slurm.start_now(job)
    _wait_for_step(out, 1, 14)
    slurm.run("scontrol", "requeue", str(job))  # SIGTERM to every process of the job
    slurm.start_now(job)
    state = slurm.wait_state(job, ("COMPLETED", "FAILED"), timeout_s=300)
    text = out.read_text()
    assert state == "COMPLETED", text[-3000:]
    assert slurm.job(job)["Restarts"] == "2"
    assert len(_starts(out)) == 3
    assert "the time limit is near; requeueing" in _starts(out)[0]

    doc = replay_json(make_kitchen(home), run_id)
    assert doc["state"]["status"] == "completed"
    stops = _events(doc, "AttemptInterrupted")
    assert [(s["signal"], s.get("reason")) for s in stops] == [
        ("SIGUSR1", "preempted"),
        ("SIGTERM", "preempted"),
    ], _starts(out)[1][-3000:]  # the second start's output: how it ended
    attempts = doc["state"]["attempts"]
    assert [a["backend"]["world_size"] for a in attempts] == ["2", "2", "2"]
    optim = [p["step"] for p in _events(doc, "StageCompleted") if p["stage"] == "optim_step"]
    assert sorted(optim) == list(range(STEPS))  # every step once: none re-executed
    resumed = [p["from_step"] for p in _events(doc, "RunResumed")]
    held = [p["step"] for p in _events(doc, "CheckpointSaved")]
    assert all(step in held for step in resumed) and len(resumed) == 2
    assert adapter_sha(home, run_id) == adapter_sha(reference, "ref")
