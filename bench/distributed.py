"""A supervised step on one process and on two (torchrun, gloo), and the all-reduce's share.

Each repeat runs ``torchrun --standalone --nproc-per-node N -m kitchen run sl_basic`` for
N = 1 and N = 2, alternating, one torch thread per process (``OMP_NUM_THREADS=1``), no
checkpoints or evaluations inside the loop; the step time is each step's ``step_time_s`` from
the log, median over the steps after the first. The all-reduce is timed on its own, on two
processes, on a flat float32 tensor as large as the run's LoRA gradients (what one
``optim_step`` sums), median of 50.

    python bench/distributed.py [--steps 12] [--repeats 3] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALLREDUCE = """
import os, statistics, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
n = int(os.environ["BENCH_NUMEL"])
t = torch.randn(n)
for _ in range(5):
    dist.all_reduce(t)
times = []
for _ in range(50):
    dist.barrier()
    t0 = time.perf_counter()
    dist.all_reduce(t)
    times.append(time.perf_counter() - t0)
if dist.get_rank() == 0:
    print(statistics.median(times))
dist.destroy_process_group()
"""


def lora_numel() -> int:
    """Trainable parameters of the default run's LoRA on kitchen/tiny."""
    from kitchen.adapters.local_torch.service import LocalServiceClient

    client = LocalServiceClient().create_lora_training_client("kitchen/tiny", 16, seed=0)
    try:
        return sum(p.numel() for p in client._params.values())
    finally:
        client.close()


def step_times(nproc: int, steps: int, batch: int) -> list[float]:
    torchrun = shutil.which("torchrun") or "torchrun"
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "KITCHEN_HOME": home, "OMP_NUM_THREADS": "1"}
        args = [
            f"max_steps={steps}",
            f"batch_size={batch}",
            "save_every=0",
            "eval_every=0",
            "eval_examples=1",
        ]
        subprocess.run(
            [
                torchrun,
                "--standalone",
                f"--nproc-per-node={nproc}",
                "-m",
                "kitchen",
                "run",
                "sl_basic",
                *args,
                "--run-id",
                "b",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            [sys.executable, "-m", "kitchen", "replay", "b", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    metrics = json.loads(out)["state"]["step_metrics"]
    return [float(metrics[k]["step_time_s"]) for k in sorted(metrics, key=int)][1:]


def allreduce_s(numel: int) -> float:
    torchrun = shutil.which("torchrun") or "torchrun"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(ALLREDUCE)
    try:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "BENCH_NUMEL": str(numel)}
        out = subprocess.run(
            [torchrun, "--standalone", "--nproc-per-node=2", f.name],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        Path(f.name).unlink()
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    for r in range(args.repeats):
        for n in (1, 2) if r % 2 == 0 else (2, 1):
            t0 = time.perf_counter()
            times[n] += step_times(n, args.steps, args.batch_size)
            print(f"repeat {r + 1}, {n} process(es): {time.perf_counter() - t0:.1f} s", flush=True)
    numel = lora_numel()
    reduce_s = allreduce_s(numel)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"LoRA gradients: {numel:,} floats ({numel * 4 / 1e6:.2f} MB)")
    print(f"step, 1 process:  {one * 1000:.1f} ms (median of {len(times[1])})")
    print(
        f"step, 2 processes: {two * 1000:.1f} ms (median of {len(times[2])}); "
        f"speed-up {one / two:.2f}x"
    )
    print(
        f"all-reduce of the gradients, 2 processes: {reduce_s * 1000:.2f} ms = "
        f"{reduce_s / two:.1%} of the 2-process step"
    )


if __name__ == "__main__":
    main()
