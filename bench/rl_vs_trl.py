"""rl_basic beside TRL's GRPOTrainer at TRL's settings: held-out gain and wall time, per seed.

For each seed, ``kitchen run rl_basic`` with the knobs TRL's defaults correspond to
(``grad_clip_norm=1.0``: TRL's ``max_grad_norm``; ``loss_aggregation=dapo``: TRL's default
``loss_type``) and ``bench/rl_trl.py`` (TRL 1.16, in its own environment) run at the same time,
one torch thread each, so whatever else loads the machine loads both alike. Both: kitchen/tiny,
LoRA 16, 8 problems × 8 samples, max 8 new tokens, temperature 1, AdamW (0.9, 0.95), the same
reward and task order, ``--steps`` steps at ``--lr`` constant. ``--defaults`` adds, per seed
and after the pairs, kitchen at its own defaults for everything but the steps and the learning
rate (no clipping, the summed loss), two seeds at a time.

    python bench/rl_vs_trl.py [--seeds 0,1,2] [--steps 40] [--lr 3e-3] [--defaults]
        [--fp32] [--trl-python /tmp/trl-venv/bin/python]

Held-out gain is ``test/accuracy`` (greedy exact match on the 64 test problems) after minus
before, in points. Wall time: TRL's is ``train()`` alone; kitchen's "train" is from its first
``rollouts`` stage to its last step's metrics (the same span: no model load, no evaluation),
and its whole run (start-up, two evaluations, the final checkpoint) beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KNOBS = ("grad_clip_norm=1.0", "loss_aggregation=dapo")


def kitchen_cmd(steps: int, lr: float, seed: int, knobs: tuple[str, ...]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kitchen.cli",
        "run",
        "rl_basic",
        f"max_steps={steps}",
        f"learning_rate={lr}",
        "lr_schedule=constant",
        "eval_every=0",
        "save_every=0",
        f"seed={seed}",
        "torch_threads=1",
        *knobs,
        "--run-id",
        "b",
    ]


def kitchen_result(home: str, wall: float) -> dict[str, Any]:
    env = {**os.environ, "KITCHEN_HOME": home}
    doc = json.loads(
        subprocess.run(
            [sys.executable, "-m", "kitchen.cli", "replay", "b", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )

    def at(kind: str, stage: str) -> list[float]:
        return [
            datetime.fromisoformat(e["recorded_at"]).timestamp()
            for e in doc["events"]
            if e["type"] == kind and e["payload"]["stage"] == stage
        ]

    train = at("StageCompleted", "log_step_metrics")[-1] - at("StageStarted", "rollouts")[0]
    shown = json.loads(
        subprocess.run(
            [sys.executable, "-m", "kitchen.cli", "show", "b", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    evals = shown["state"]["eval_metrics"]
    steps = sorted(evals, key=int)
    before, after = evals[steps[0]]["test/accuracy"], evals[steps[-1]]["test/accuracy"]
    return {"before": before, "after": after, "train_s": train, "wall_s": wall}


TRL_LINE = re.compile(r"test/accuracy ([\d.]+) -> ([\d.]+) .* train ([\d.]+) s")


def trl_result(out: str, wall: float) -> dict[str, Any]:
    m = TRL_LINE.search(out)
    if m is None:
        raise RuntimeError(f"rl_trl.py printed no result:\n{out[-2000:]}")
    return {
        "before": float(m[1]),
        "after": float(m[2]),
        "train_s": float(m[3]),
        "wall_s": wall,
    }


def launch(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], float]:
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc, time.perf_counter()


def run_kitchens(args: argparse.Namespace, seeds: list[int], knobs: tuple[str, ...]) -> list[Any]:
    homes = [tempfile.mkdtemp(prefix="rl-vs-trl-") for _ in seeds]
    procs = []
    for seed, home in zip(seeds, homes, strict=True):
        env = {**os.environ, "KITCHEN_HOME": home, "OMP_NUM_THREADS": "1"}
        procs.append(launch(kitchen_cmd(args.steps, args.lr, seed, knobs), env))
    results = []
    for (proc, t0), home in zip(procs, homes, strict=True):
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"kitchen run failed:\n{out[-2000:]}")
        results.append(kitchen_result(home, time.perf_counter() - t0))
    return results


def show(label: str, seed: int, r: dict[str, Any]) -> None:
    gain = 100 * (r["after"] - r["before"])
    print(
        f"{label:<22} seed {seed}: test/accuracy {r['before']:.4f} -> {r['after']:.4f} "
        f"({gain:+.1f} points), train {r['train_s']:.1f} s, whole {r['wall_s']:.1f} s",
        flush=True,
    )


def summary(label: str, rows: list[dict[str, Any]]) -> None:
    gains = [100 * (r["after"] - r["before"]) for r in rows]
    print(
        f"{label:<22} mean gain {statistics.mean(gains):+.1f} points, "
        f"mean train {statistics.mean(r['train_s'] for r in rows):.1f} s, "
        f"mean whole {statistics.mean(r['wall_s'] for r in rows):.1f} s",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--defaults", action="store_true", help="also kitchen at its own defaults")
    ap.add_argument("--trl-python", default="/tmp/trl-venv/bin/python")
    ap.add_argument(
        "--fp32",
        action="store_true",
        help="TRL without bf16 autocast and gradient checkpointing (kitchen's float32)",
    )
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    ours, theirs, plain = [], [], []
    for seed in seeds:
        home = tempfile.mkdtemp(prefix="rl-vs-trl-")
        kenv = {**os.environ, "KITCHEN_HOME": home, "OMP_NUM_THREADS": "1"}
        tenv = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        trl_cmd = [
            args.trl_python,
            "bench/rl_trl.py",
            f"--steps={args.steps}",
            f"--lr={args.lr}",
            "--schedule=constant",
            f"--seed={seed}",
            *(["--fp32"] if args.fp32 else []),
        ]
        k, k0 = launch(kitchen_cmd(args.steps, args.lr, seed, KNOBS), kenv)
        t, t0 = launch(trl_cmd, tenv)
        kout, _ = k.communicate()
        kwall = time.perf_counter() - k0
        tout, _ = t.communicate()
        twall = time.perf_counter() - t0
        if k.returncode != 0:
            raise RuntimeError(f"kitchen run failed:\n{kout[-2000:]}")
        ours.append(kitchen_result(home, kwall))
        theirs.append(trl_result(tout, twall))
        show("kitchen, TRL's knobs", seed, ours[-1])
        show("TRL GRPOTrainer", seed, theirs[-1])
    if args.defaults:
        for i in range(0, len(seeds), 2):
            chunk = seeds[i : i + 2]
            for seed, r in zip(chunk, run_kitchens(args, chunk, ()), strict=True):
                plain.append(r)
                show("kitchen, own defaults", seed, r)
    summary("kitchen, TRL's knobs", ours)
    summary("TRL GRPOTrainer", theirs)
    if plain:
        summary("kitchen, own defaults", plain)


if __name__ == "__main__":
    main()
