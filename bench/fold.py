"""Fold and replay speed: how fast history becomes state, and how fast the audit CLI answers.

Measures, on a synthetic supervised run shaped like the real one (set-up stages, ten events per
step, a checkpoint every 20 steps with retention, an evaluation every 50, a crash and a resume
from a checkpoint half-way, teardown):

- fold: events/s of ``kitchen.state.fold`` alone (the Recorded objects are built first);
- ``kitchen replay RUN_ID`` wall time on a 10,000-event run stored in SQLite (the real console
  script in a fresh process: start-up, read, decode, fold, print);
- start-up: ``kitchen --help`` and ``kitchen runs`` wall time.

Usage: python bench/fold.py [--events N] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kitchen import events as ev
from kitchen.state import Recorded, fold

KITCHEN = str(Path(sys.executable).with_name("kitchen"))
RUN_ID = "bench-fold"
SAVE_EVERY = 20
EVAL_EVERY = 50
KEEP_CHECKPOINTS = 2
STEP_STAGES = ("get_batch", "forward_backward", "optim_step", "await_future", "log_step_metrics")
SETUP = ("load_dataset", "init_session", "init_tokenizer", "build_supervised_dataset")

Pair = tuple[str, dict[str, Any]]


def stage(name: str, step: int, outputs: dict[str, Any] | None = None) -> Iterator[Pair]:
    yield (
        "StageStarted",
        {
            "stage": name,
            "source": "prev",
            "dest": name,
            "step": step,
            "epoch": 0,
            "attempt": 1,
        },
    )
    yield (
        "StageCompleted",
        {
            "stage": name,
            "dest": name,
            "step": step,
            "epoch": 0,
            "outputs": outputs or {},
            "duration_s": 0.0123,
        },
    )


def step_metrics(step: int) -> dict[str, Any]:
    nll = 3.0 / (1.0 + 0.01 * step)
    return {
        "train_mean_nll": nll,
        "learning_rate": 1e-4,
        "grad_norm": 1.5,
        "num_sequences": 8,
        "num_tokens": 1024,
        "tokens_per_s": 4096.0,
        "epoch": 0,
    }


def attempt(n: int, resumed_from: int | None) -> Pair:
    return "AttemptStarted", {
        "attempt": n,
        "worker": f"bench:{n}:00",
        "host": "bench",
        "pid": 1000 + n,
        "resumed_from": resumed_from,
    }


class History:
    """Builds the (type, payload) pairs of a run, tracking seqs as the runner would."""

    def __init__(self) -> None:
        self.pairs: list[Pair] = []
        self.checkpoints: list[tuple[int, int, str]] = []  # (seq, step, uri)

    def add(self, *pairs: Pair) -> None:
        self.pairs.extend(pairs)

    def setup(self) -> None:
        for name in SETUP:
            self.add(*stage(name, 0, {"rows": 1000}))

    def train_step(self, step: int) -> None:
        for name in STEP_STAGES:
            outputs: dict[str, Any] = {}
            if name == "log_step_metrics":
                outputs = {"steps": {str(step): step_metrics(step)}}
            elif name == "optim_step":
                outputs = {"learning_rate": 1e-4}
            self.add(*stage(name, step, outputs))
        done = step + 1
        if done % SAVE_EVERY == 0:
            self.save(done)
        if done % EVAL_EVERY == 0:
            self.add(*stage("evaluate", done, {"metrics": {"test/nll": 2.0, "test/accuracy": 0.5}}))

    def save(self, done: int) -> None:
        uri = f"{RUN_ID}/checkpoints/step-{done:06d}"
        self.add(*stage("save_checkpoint", done, {"name": f"step-{done:06d}"}))
        self.add(
            (
                "CheckpointSaved",
                {
                    "name": f"step-{done:06d}",
                    "step": done,
                    "epoch": 0,
                    "uri": uri,
                    "sha256": "0" * 64,
                    "bytes": 1 << 20,
                    "machine_state": "save_checkpoint",
                    "cursor": {"epoch": 0, "batch_index": done},
                },
            )
        )
        self.checkpoints.append((len(self.pairs), done, uri))
        live = self.checkpoints[-KEEP_CHECKPOINTS - 1 : -KEEP_CHECKPOINTS]
        for seq, step, old in live:
            self.add(("CheckpointDeleted", {"checkpoint_seq": seq, "uri": old, "step": step}))


def synthetic_history(n_events: int) -> list[Pair]:
    """At most ``n_events`` events (the most steps that fit); crashes half-way and resumes."""
    steps = max(n_events // 10, 2 * SAVE_EVERY)
    pairs = build_run(steps)
    while len(pairs) > n_events and steps > 2 * SAVE_EVERY:
        steps -= 1
        pairs = build_run(steps)
    return pairs


def build_run(steps: int) -> list[Pair]:
    h = History()
    h.add(
        (
            "RunCreated",
            {
                "recipe": "sl_basic",
                "workflow": "supervised",
                "config": {"learning_rate": 1e-4, "max_steps": steps},
                "config_hash": "c" * 64,
                "seed": 0,
                "versions": {"python": "3.11"},
                "run_dir": RUN_ID,
            },
        ),
        attempt(1, None),
    )
    h.setup()
    crash_at = steps // 2 + 7  # a few steps after a checkpoint
    for step in range(crash_at):
        h.train_step(step)
    ckpt_seq, ckpt_step, _ = h.checkpoints[-1]
    h.add(attempt(2, ckpt_seq))
    h.add(
        (
            "RunResumed",
            {
                "attempt": 2,
                "from_checkpoint_seq": ckpt_seq,
                "from_step": ckpt_step,
                "machine_state": "save_checkpoint",
                "cursor": {"epoch": 0, "batch_index": ckpt_step},
                "config_hash": "c" * 64,
            },
        )
    )
    h.setup()
    for step in range(ckpt_step, steps):
        h.train_step(step)
    for name in ("log_epoch_metrics", "save_final_weights", "evaluate", "cleanup"):
        h.add(*stage(name, steps))
    h.add(("RunCompleted", {"step": steps, "metrics": {"train_mean_nll": 1.0}}))
    return h.pairs


# --------------------------------------------------------------------------- measurements


def bench_fold(pairs: list[Pair], repeats: int) -> tuple[float, Any]:
    """Median events/s of fold over pre-built records, and the final state."""
    records = [
        Recorded(seq, None, ev.decode(kind, 1, payload))
        for seq, (kind, payload) in enumerate(pairs, start=1)
    ]
    times = []
    state = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        state = fold(RUN_ID, records)
        times.append(time.perf_counter() - t0)
    return len(records) / statistics.median(times), state


def store_run(db_url: str, pairs: list[Pair]) -> None:
    from kitchen.store import NewEvent, open_store

    store = open_store(db_url)
    try:
        seq = 0
        for start in range(0, len(pairs), 500):
            batch = [NewEvent(kind, payload) for kind, payload in pairs[start : start + 500]]
            seq = store.append(RUN_ID, batch, expected_seq=seq)[-1].seq
    finally:
        store.close()


def wall(args: list[str], env: dict[str, str], repeats: int) -> tuple[float, float]:
    """Median wall and CPU (user + system) seconds of ``kitchen ARGS``, after one warm-up run.

    CPU time is reported beside wall time because on a shared machine the wall time also
    counts the time the process waited for a core.
    """
    walls, cpus = [], []
    for i in range(repeats + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([KITCHEN, *args], env=env, capture_output=True, check=False)
        elapsed = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"kitchen {' '.join(args)} failed: {proc.stderr.decode()[-500:]}")
        if i:
            walls.append(elapsed)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events in the run")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    args = parser.parse_args()

    pairs = synthetic_history(args.events)
    rate, state = bench_fold(pairs, args.repeats)
    assert state is not None and state.status == "completed" and state.superseded

    rows = [("fold", f"{rate:,.0f} events/s", "", ">= 200,000 events/s", rate >= 200_000)]
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/kitchen.db"
        store_run(db_url, pairs)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
        env |= {"KITCHEN_HOME": tmp, "KITCHEN_DB_URL": db_url}
        for name, argv, goal in (
            (f"kitchen replay ({len(pairs):,} events)", ["replay", RUN_ID], 1.0),
            ("kitchen --help", ["--help"], 0.5),
            ("kitchen runs", ["runs"], 0.5),
        ):
            seconds, cpu = wall(argv, env, args.repeats)
            rows.append((name, f"{seconds:.3f} s", f"{cpu:.3f} s", f"< {goal:g} s", seconds < goal))

    print(f"{len(pairs):,} events, {state.step} steps; median of {args.repeats} runs")
    print(f"{'measure':<32} {'result (wall)':>18} {'cpu':>8}  {'goal':<20} met")
    for label, result, cpu_s, target, ok in rows:
        print(f"{label:<32} {result:>18} {cpu_s:>8}  {target:<20} {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
