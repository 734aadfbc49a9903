"""Resume latency: from `kitchen resume` of a killed run to its first new training step.

A 40-step sl_basic run (save_every 10) is SIGKILLed at a fault point after step 25; then the
clock starts, `kitchen resume` is launched, and the run's log is polled until (1) the new
attempt's RunResumed and (2) its first re-executed step's `log_step_metrics` are committed.
Repeats give a median.

    python bench/resume_latency.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

CONFIG = [
    "max_steps=40",
    "save_every=10",
    "batch_size=8",
    "max_length=64",
    "eval_examples=4",
    "eval_max_tokens=4",
]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITCHEN_", "OTEL_"))}
    env["KITCHEN_HOME"] = str(home)
    env.update(extra)
    return env


def one(home: Path, run_id: str) -> tuple[float, float]:
    from kitchen.store import open_store

    subprocess.run(
        ["kitchen", "run", "sl_basic", *CONFIG, "--run-id", run_id],
        env=_env(home, KITCHEN_FAULT="stage:get_batch:after@26"),
        capture_output=True,
        check=False,
    )
    store = open_store(f"sqlite:///{home}/kitchen.db")
    before = store.last_seq(run_id)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["kitchen", "resume", run_id],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    resumed = first_step = None
    while first_step is None and proc.poll() is None:
        for e in store.read(run_id, after_seq=before):
            if e.type == "RunResumed" and resumed is None:
                resumed = time.perf_counter() - t0
            logged = e.type == "StageCompleted" and e.payload["stage"] == "log_step_metrics"
            if logged and e.payload["outputs"].get("steps"):
                first_step = time.perf_counter() - t0
                break
        time.sleep(0.01)
    proc.wait()
    store.close()
    assert resumed is not None and first_step is not None, "the resume logged no step"
    return resumed, first_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(args.repeats):
            rows.append(one(Path(scratch) / f"h{r}", f"latency-{r}"))
            resumed, first = rows[-1]
            print(f"repeat {r + 1}: RunResumed {resumed:.2f} s, first step {first:.2f} s")
    resumed = statistics.median(r[0] for r in rows)
    first = statistics.median(r[1] for r in rows)
    print("| measure | median s |\n|---|---|")
    print(f"| `kitchen resume` -> RunResumed committed | {resumed:.2f} |")
    print(f"| `kitchen resume` -> first new step committed | {first:.2f} |")


if __name__ == "__main__":
    main()
