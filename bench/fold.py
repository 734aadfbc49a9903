"""Fold and replay speed: how fast history becomes state, and how fast the audit CLI answers.

Measures, on a synthetic supervised run shaped like the real one (set-up stages, ten events per
step, a checkpoint every 20 steps with retention, an evaluation every 50, a crash and a resume
from a checkpoint half-way, teardown):

- fold: events/s of ``kitchen.engine.state.fold`` alone (the Recorded objects are built first);
- ``kitchen replay RUN_ID`` wall and CPU time on a ``--events`` run stored in SQLite with the
  snapshots a runner writes (the real console script in a fresh process: start-up, read the
  snapshot and the tail, decode, fold, print the tail of the timeline and the state), and with
  ``--all`` (every event printed) beside it;
- start-up: ``kitchen --help`` and ``kitchen runs`` wall time;
- resume's fold on a ``--resume-events`` run that crashed (SQLite): what ``kitchen resume``
  folds before it decides anything (``UnitOfWork.refold``: the newest snapshot, verified and
  decoded, plus the events after it), at the worst point, just before the next snapshot was
  due; and the same fold without snapshots, once, for comparison.

Usage: python bench/fold.py [--events N] [--resume-events N] [--repeats R]
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from kitchen.engine import events as ev
from kitchen.engine import snapshots
from kitchen.engine.state import Recorded, RunState, advance, fold

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
    """Builds the (type, payload) pairs of a run, tracking seqs as the runner would; ``take``
    hands over what was added since the last call, so long runs can be streamed."""

    def __init__(self) -> None:
        self.pending: list[Pair] = []
        self.count = 0  # events added so far: the seq of the last one
        self.checkpoints: list[tuple[int, int, str]] = []  # (seq, step, uri)

    def add(self, *pairs: Pair) -> None:
        self.pending.extend(pairs)
        self.count += len(pairs)

    def take(self) -> list[Pair]:
        out, self.pending = self.pending, []
        return out

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
        self.checkpoints.append((self.count, done, uri))
        live = self.checkpoints[-KEEP_CHECKPOINTS - 1 : -KEEP_CHECKPOINTS]
        for seq, step, old in live:
            self.add(("CheckpointDeleted", {"checkpoint_seq": seq, "uri": old, "step": step}))


def synthetic_history(n_events: int) -> list[Pair]:
    """At most ``n_events`` events (the most steps that fit); crashes half-way and resumes."""
    steps = max(n_events // 10, 2 * SAVE_EVERY)
    pairs = build_run(steps)
    while len(pairs) > n_events and steps > 2 * SAVE_EVERY:
        steps -= max(1, (len(pairs) - n_events) // 11)
        pairs = build_run(steps)
    return pairs


def build_run(steps: int) -> list[Pair]:
    return list(stream_run(steps))


def stream_run(steps: int) -> Iterator[Pair]:
    """The run's events in order, produced a step at a time."""
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
        yield from h.take()
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
        yield from h.take()
    for name in ("log_epoch_metrics", "save_final_weights", "evaluate", "cleanup"):
        h.add(*stage(name, steps))
    h.add(("RunCompleted", {"step": steps, "metrics": {"train_mean_nll": 1.0}}))
    yield from h.take()


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


SnapshotAt = Callable[[int, bool], bool]  # (seq, an attempt ends there) -> snapshot after it?


def runner_policy(every: int) -> SnapshotAt:
    """Snapshots where a runner would take them (it checks at each commit, about every step;
    here after every event): ``snapshots.Policy``."""
    policy = snapshots.Policy(every)
    last = [0]

    def due(seq: int, ends_attempt: bool) -> bool:
        if policy.due(seq - last[0], ends_attempt):
            last[0] = seq
            return True
        return False

    return due


def store_run(db_url: str, pairs: Iterable[Pair], snapshot_at: SnapshotAt) -> list[int]:
    """Append the run in batches of up to 500 events, cut where ``snapshot_at`` wants a
    snapshot, which is then written from the fold of the stored events. Returns their seqs."""
    from kitchen.store import NewEvent, open_store

    ends = {cls.__name__ for cls in snapshots.MILESTONES}
    store = open_store(db_url)
    state = RunState(run_id=RUN_ID)
    owned: set[str] = set()
    written: list[int] = []
    batch: list[Pair] = []
    seq = 0

    def flush() -> None:
        nonlocal state, seq
        stored = store.append(RUN_ID, [NewEvent(k, p) for k, p in batch], expected_seq=seq)
        for row, (kind, payload) in zip(stored, batch, strict=True):
            rec = Recorded(row.seq, row.recorded_at, ev.decode(kind, 1, payload))
            state = advance(state, rec, owned)
        seq = stored[-1].seq
        batch.clear()

    try:
        for kind, payload in pairs:
            batch.append((kind, payload))
            snap = snapshot_at(seq + len(batch), kind in ends)
            if snap or len(batch) == 500:
                flush()
            if snap:
                snapshots.save(store, state)
                written.append(seq)
        if batch:
            flush()
    finally:
        store.close()
    return written


def bench_resume_fold(
    db_url: str, every: int, repeats: int
) -> tuple[float, float, dict[str, float]]:
    """Median wall and CPU seconds of ``UnitOfWork.refold`` (resume's fold), and where the
    CPU time of one of them goes."""
    from kitchen.engine.unit_of_work import UnitOfWork
    from kitchen.store import open_store

    store = open_store(db_url)
    try:
        walls, cpus = [], []
        for _ in range(repeats):
            uow = UnitOfWork(store, RUN_ID, snapshots.Policy(every))
            t0, c0 = time.perf_counter(), time.process_time()
            state = uow.refold()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        assert uow.snapshot_seq > 0 and state.last_seq > uow.snapshot_seq
        parts: dict[str, float] = {}
        with snapshots._no_gc():  # as load() runs them
            c0 = time.process_time()
            snap = store.read_snapshot(RUN_ID, snapshots.fold_version())
            parts["read and verify the snapshot"] = time.process_time() - c0
            assert snap is not None
            c0 = time.process_time()
            start = snapshots.decode(snap.state)
            parts["decode it"] = time.process_time() - c0
            c0 = time.process_time()
            rows = store.read(RUN_ID, after_seq=snap.seq)
            parts[f"read the tail ({len(rows):,} events)"] = time.process_time() - c0
            c0 = time.process_time()
            recs = snapshots.recorded(rows)
            parts["decode the tail"] = time.process_time() - c0
            c0 = time.process_time()
            fold(RUN_ID, recs, start)
            parts["fold the tail"] = time.process_time() - c0
        parts["snapshot size (MB)"] = len(snap.state.encode()) / 1e6
        parts["snapshot seq"] = snap.seq
        parts["run events"] = state.last_seq
        c0 = time.process_time()
        snapshots.encode(state)
        parts["encoding the state, as a writer does (s)"] = time.process_time() - c0
    finally:
        store.close()
    return statistics.median(walls), statistics.median(cpus), parts


def full_fold_seconds(db_url: str) -> float:
    """One fold of the whole log without snapshots: read, decode, fold (what resume did before)."""
    from kitchen.store import open_store

    store = open_store(db_url)
    try:
        t0 = time.perf_counter()
        fold(RUN_ID, snapshots.recorded(store.read(RUN_ID)))
        return time.perf_counter() - t0
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
    parser.add_argument("--events", type=int, default=100_000, help="events of the replayed run")
    parser.add_argument(
        "--resume-events",
        type=int,
        default=1_000_000,
        help="events of the crashed run whose resume fold is timed (0: skip)",
    )
    parser.add_argument(
        "--every", type=int, default=snapshots.DEFAULT_EVERY, help="events between snapshots"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument(
        "--resume-db",
        metavar="FILE",
        help="SQLite file for the crashed run: built there if missing, reused if present",
    )
    args = parser.parse_args()

    pairs = synthetic_history(args.events)
    rate, state = bench_fold(pairs, args.repeats)
    assert state is not None and state.status == "completed" and state.superseded

    rows = [("fold", f"{rate:,.0f} events/s", "", ">= 200,000 events/s", rate >= 200_000)]
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/kitchen.db"
        written = store_run(db_url, pairs, runner_policy(args.every))
        notes.append(f"replayed run: snapshots at seq {written[-2:]} of {len(pairs):,}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
        env |= {"KITCHEN_HOME": tmp, "KITCHEN_DB_URL": db_url}
        for name, argv, goal in (
            (f"kitchen replay ({len(pairs):,} events)", ["replay", RUN_ID], 1.0),
            (f"kitchen replay --all ({len(pairs):,})", ["replay", RUN_ID, "--all"], None),
            ("kitchen --help", ["--help"], 0.5),
            ("kitchen runs", ["runs"], 0.5),
        ):
            seconds, cpu = wall(argv, env, args.repeats)
            if goal is None:
                rows.append((name, f"{seconds:.3f} s", f"{cpu:.3f} s", "(for comparison)", None))
            else:
                met = seconds < goal and cpu < goal
                rows.append((name, f"{seconds:.3f} s", f"{cpu:.3f} s", f"< {goal:g} s", met))
    if args.resume_events:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(args.resume_db or f"{tmp}/kitchen.db")
            db_url = f"sqlite:///{path}"
            n, every = args.resume_events, args.every
            written: list[int] = []
            if not path.exists():
                # Crashed just before its next snapshot was due: the longest tail to fold.
                crashed = itertools.islice(stream_run(n // 9), n)
                due = lambda seq, _end: (n - seq) % every == every - 1  # noqa: E731
                written = store_run(db_url, crashed, due)
            seconds, cpu, parts = bench_resume_fold(db_url, every, args.repeats)
            name = f"resume's fold ({n:,} events)"
            rows.append((name, f"{seconds:.3f} s", f"{cpu:.3f} s", "< 0.5 s", cpu < 0.5))
            if not args.resume_db:
                full = full_fold_seconds(db_url)
                rows.append(("the same without snapshots", f"{full:.3f} s", "", "(once)", None))
            notes.append(f"crashed run: {len(written)} snapshots written; one fold's CPU time:")
            notes += [f"  {k}: {v:,.3f}" for k, v in parts.items()]

    print(f"{len(pairs):,} events, {state.step} steps; median of {args.repeats} runs")
    print(f"{'measure':<36} {'result (wall)':>18} {'cpu':>8}  {'goal':<20} met")
    for label, result, cpu_s, target, ok in rows:
        met = "" if ok is None else ("yes" if ok else "NO")
        print(f"{label:<36} {result:>18} {cpu_s:>8}  {target:<20} {met}")
    print("\n".join(notes))


if __name__ == "__main__":
    main()
