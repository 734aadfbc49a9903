"""``kitchen serve`` against the same loop in-process: per-step time and requests per second.

Starts a real server (uvicorn, a SQLite log under a temporary KITCHEN_HOME) and two client
processes: one drives a model through the unmodified tinker SDK, the other the same loop
in-process on LocalTrainingClient. A step is a forward_backward of ``--batch`` examples on the
embedded model, then an optim_step, the next step's forward_backward submitted before the
previous optim_step's result is read. Both warm up, then take turns: ``--repeats`` rounds, in
each a block of ``--steps`` steps served and a block in-process (which goes first alternates),
so a slow spell of a shared machine hits both sides of a round alike; each round gives a ratio
of the two blocks' median steps, and the figure is the median of those. Last, a burst of cheap
authenticated requests (``session_heartbeat``) over one keep-alive connection gives requests
per second, which is the server's fixed cost per request.

    python bench/serve.py [--steps 40] [--batch 8] [--data short|chat] [--repeats 3] [--threads 1]
                          [--models-in-process]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CLIENT = r"""
import json, sys, time
mode, examples = sys.argv[1], json.load(open(sys.argv[2]))
# examples: [[tokens, weights], ...], the same for both loops
if mode == "served":
    import tinker
    from tinker import types
    tc = tinker.ServiceClient().create_lora_training_client(
        base_model="kitchen/tiny", rank=16, seed=0).result()
    data = [types.Datum(model_input=types.ModelInput.from_ints(t[:-1]),
                        loss_fn_inputs={"target_tokens": t[1:], "weights": w[1:]})
            for t, w in examples]
    fb = lambda: tc.forward_backward(data, "cross_entropy")
    opt = lambda: tc.optim_step(types.AdamParams(learning_rate=1e-4))
else:
    from kitchen.adapters.local_torch import LocalTrainingClient
    from kitchen.types import AdamParams, Datum, ModelInput, TensorData
    tc = LocalTrainingClient(model_name="kitchen/tiny", lora_rank=16, seed=0)
    data = [Datum(ModelInput.from_ints(t[:-1]),
                  {"target_tokens": TensorData.from_list(t[1:], "int64"),
                   "weights": TensorData.from_list(w[1:], "float32")})
            for t, w in examples]
    fb = lambda: tc.forward_backward(data, "cross_entropy")
    opt = lambda: tc.optim_step(AdamParams(learning_rate=1e-4))

import os

def cpu():
    # CPU seconds of this process, plus the server's and its model process's when served
    # (BENCH_SERVER_PID)
    total = time.process_time()
    pid = os.environ.get("BENCH_SERVER_PID")
    if pid:
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
        for p in [pid, *children]:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total

def loop(n):
    times = []
    pending = fb()
    for i in range(n):
        start = time.perf_counter()
        o = opt()
        nxt = fb() if i + 1 < n else None
        pending.result(); o.result()
        pending = nxt
        times.append(time.perf_counter() - start)
    if pending is not None:
        pending.result()
    return times

loop(5)  # warm-up
print("ready", flush=True)
for line in sys.stdin:  # "N": run N steps, answer their times and this block's CPU per step
    n = int(line)
    c0 = cpu()
    times = loop(n)
    print(json.dumps({"times": times, "cpu_per_step": (cpu() - c0) / n}), flush=True)
"""

BURST = r"""
import json, sys, time, httpx
url, key, session, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with httpx.Client(base_url=url, headers={"X-API-Key": key}) as c:
    for _ in range(20):
        c.post("/api/v1/session_heartbeat", json={"session_id": session})
    start = time.perf_counter()
    for _ in range(n):
        assert c.post("/api/v1/session_heartbeat", json={"session_id": session}).status_code == 200
    print(json.dumps(n / (time.perf_counter() - start)))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINKER_", "KITCHEN_"))}
    env.update(KITCHEN_HOME=str(home), PYTHONPATH=str(ROOT), TINKER_TELEMETRY="0")
    return env


def run_json(code: str, args: list[str], env: dict[str, str]) -> object:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument(
        "--data",
        choices=("short", "chat"),
        default="short",
        help="short: one-line sums of ~15 tokens; chat: kitchen/arith-chat conversations "
        "rendered as sl_basic renders them (with --batch 32, sl_basic's step)",
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--burst", type=int, default=2000)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS for the server and both clients (0: torch's default)",
    )
    p.add_argument(
        "--models-in-process",
        action="store_true",
        help="serve with kitchen serve --models-in-process (the models in the server's process)",
    )
    args = p.parse_args()
    from kitchen.serve import keys

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        key, _ = keys.create(home / "serve")
        args.examples = home / "examples.json"
        args.examples.write_text(json.dumps(examples(args.data, args.batch)))
        port = free_port()
        env = env_for(home)
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        with open(home / "server.log", "wb") as log:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kitchen.cli",
                    "serve",
                    "--port",
                    str(port),
                    "--checkpoint-every",
                    "10",
                    *(["--models-in-process"] if args.models_in_process else []),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.1)
            url = f"http://127.0.0.1:{port}"
            client_env = {
                **env,
                "TINKER_BASE_URL": url,
                "TINKER_API_KEY": key,
                "BENCH_SERVER_PID": str(server.pid),
            }
            served_client = start_client(args, client_env, "served")
            local_client = start_client(args, env, "inprocess")
            served: list[dict[str, float]] = []
            local: list[dict[str, float]] = []
            try:
                for r in range(args.repeats):  # a round: one block each, first side alternating
                    pair = [("served", served_client), ("local", local_client)]
                    for side, client in pair if r % 2 == 0 else pair[::-1]:
                        (served if side == "served" else local).append(block(client, args.steps))
            finally:
                for client in (served_client, local_client):
                    client.stdin.close()  # type: ignore[union-attr]
                    client.wait(60)
            import httpx

            session = httpx.post(
                f"{url}/api/v1/create_session",
                json={"sdk_version": "bench"},
                headers={"X-API-Key": key},
            ).json()["session_id"]
            rps = run_json(BURST, [url, key, session, str(args.burst)], env)
        finally:
            server.terminate()
            server.wait(10)
    print(
        f"blocks of {args.steps} steps x batch {args.batch} ({args.data}), {args.repeats} rounds "
        "of a block each way, "
        f"threads {args.threads or 'default'}, models "
        + ("in the server's process" if args.models_in_process else "in a process of their own")
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    for name, key in (
        ("median step wall", "median"),
        ("min step wall", "min"),
        ("CPU per step", "cpu"),
    ):
        s = statistics.median(r[key] for r in served)
        loc = statistics.median(r[key] for r in local)
        ratios = [a[key] / b[key] for a, b in zip(served, local, strict=True)]
        runs = ", ".join(
            f"{a[key] * 1000:.1f}/{b[key] * 1000:.1f}" for a, b in zip(served, local, strict=True)
        )
        print(
            f"{name:17} served {s * 1000:8.2f} ms  in-process {loc * 1000:8.2f} ms  "
            f"ratio of the rounds (median) {statistics.median(ratios):.3f}  "
            f"(rounds served/in-process: {runs})"
        )
    print(f"requests/s (session_heartbeat, one keep-alive connection): {rps:.0f}")


def examples(data: str, batch: int) -> list[tuple[list[int], list[float]]]:
    """``batch`` training examples as (tokens, weights), weights on the tokens to predict."""
    from kitchen.adapters.local_torch.loading import load_tokenizer, resolve_name

    tok = load_tokenizer(resolve_name("kitchen/tiny"))
    if data == "short":
        texts = [f"What is {i}+{2 * i + 1}? {3 * i + 1}" for i in range(batch)]
        return [(ids, [1.0] * len(ids)) for ids in (list(tok.encode(t)) for t in texts)]
    from kitchen.embedded.datasets import load_embedded
    from kitchen.renderers import get_renderer

    renderer = get_renderer("role_colon", tok)
    rows = load_embedded("kitchen/arith-chat", "train")[:batch]
    out = []
    for row in rows:
        model_input, weights = renderer.build_supervised_example(row["messages"])
        out.append((model_input.to_ints(), [float(w) for w in weights]))
    return out


def start_client(args: argparse.Namespace, env: dict[str, str], mode: str) -> subprocess.Popen[str]:
    """A client process that has built its model and warmed up, waiting for blocks."""
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, mode, str(args.examples)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = client.stdout.readline()  # type: ignore[union-attr]
    if line.strip() != "ready":
        raise SystemExit(f"the {mode} client did not start (exit {client.wait(60)})")
    return client


def block(client: subprocess.Popen[str], steps: int) -> dict[str, float]:
    """``steps`` steps on a started client: the median and fastest step, CPU per step."""
    client.stdin.write(f"{steps}\n")  # type: ignore[union-attr]
    client.stdin.flush()  # type: ignore[union-attr]
    out = json.loads(client.stdout.readline())  # type: ignore[union-attr]
    times = out["times"]
    return {"median": statistics.median(times), "min": min(times), "cpu": out["cpu_per_step"]}


if __name__ == "__main__":
    main()
