"""``kitchen serve`` under many users: a load test, the memory of many models on one base, and
start-up with many models on record. Bounded in count and time; loopback only.

1. **load**: ``--clients`` SDK client processes, each training its own model on the embedded
   base for ``--seconds`` (a forward_backward and an optim_step a step, submitted ahead; a
   seeded sample every ``--sample-every`` steps), against one server with
   ``--max-resident-models`` places. Reports request latency p50/p99 (submit to result, every
   request), responses with a 5xx status the clients' HTTP layer saw, the server's peak RSS
   (its own and its model process's), and checks the log: each model's optimizer steps on
   record equal the steps its client saw done, and no request seq_id is on record twice or
   missing.
2. **memory**: a generated base of at least 300 MB (a random Llama, float32); the server's peak
   RSS after one model takes ``--mem-steps`` steps, then (a fresh server) after
   ``--mem-models`` models each take them; the ratio.
3. **start-up**: ``--startup-models`` served models written on record (each created and given
   a few requests, through the server's own journal), then the time from starting
   ``kitchen serve`` to its first answered request, against the same with none on record; and
   the first request to one of those models (taken up from its log).

    python bench/serve_load.py [--clients 8] [--seconds 60] [--max-resident 4]
        [--mem-models 8] [--startup-models 200] [--skip load,memory,startup]
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

CLIENT = r"""
import json, logging, sys, time
out, base = sys.argv[1], sys.argv[2]
seed, seconds, sample_every = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
statuses = []
class Count(logging.Handler):  # every HTTP response the SDK's client received, retries included
    def emit(self, record):
        if str(record.msg).startswith("HTTP Response"):
            statuses.append(int(record.args[2]))
logging.getLogger("tinker._base_client").setLevel(logging.DEBUG)
logging.getLogger("tinker._base_client").addHandler(Count())
logging.getLogger("tinker._base_client").propagate = False
import tinker
from tinker import types
sc = tinker.ServiceClient()
tc = sc.create_lora_training_client(base_model=base, rank=8, seed=seed).result()
tok = tc.get_tokenizer()
ids = tok.encode(f"What is {seed}+{seed}? {2 * seed} and some more words to train on")
d = types.Datum(model_input=types.ModelInput.from_ints(ids[:-1]),
                loss_fn_inputs={"target_tokens": ids[1:], "weights": [1.0] * (len(ids) - 1)})
lat, steps, samples, losses = [], 0, 0, []
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    t0 = time.monotonic()
    fb = tc.forward_backward([d], "cross_entropy")
    opt = tc.optim_step(types.AdamParams(learning_rate=1e-3))
    losses.append(fb.result().metrics["loss:sum"]); lat.append(time.monotonic() - t0)
    opt.result(); lat.append(time.monotonic() - t0)
    steps += 1
    if sample_every and steps % sample_every == 0:
        t0 = time.monotonic()
        s = tc.save_weights_and_get_sampling_client().result()
        s.sample(types.ModelInput.from_ints(ids[:4]), 1,
                 types.SamplingParams(temperature=1.0, seed=steps, max_tokens=8)).result()
        lat.append(time.monotonic() - t0); samples += 1
json.dump({"model_id": tc.model_id, "steps": steps, "samples": samples, "latencies": lat,
           "statuses": statuses, "losses": losses}, open(out, "w"))
"""

MEM_CLIENT = r"""
import sys
import tinker
from tinker import types
base, models, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sc = tinker.ServiceClient()
for m in range(models):
    tc = sc.create_lora_training_client(base_model=base, rank=8, seed=m).result()
    ids = list(range(3, 40))
    d = types.Datum(model_input=types.ModelInput.from_ints(ids[:-1]),
                    loss_fn_inputs={"target_tokens": ids[1:], "weights": [1.0] * (len(ids) - 1)})
    for _ in range(steps):
        tc.forward_backward([d], "cross_entropy").result()
        tc.optim_step(types.AdamParams(learning_rate=1e-3)).result()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINKER_", "KITCHEN_"))}
    env.update(
        KITCHEN_HOME=str(home),
        PYTHONPATH=str(ROOT),
        TINKER_TELEMETRY="0",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",  # one torch thread a process: 9 processes share 2 cores
        **extra,
    )
    return env


def make_key(home: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "kitchen.cli", "serve", "keys", "create", "--name", "bench"],
        env=env_for(home),
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


class Server:
    def __init__(self, home: Path, *flags: str) -> None:
        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(home / "server.log", "ab")  # noqa: SIM115
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kitchen.cli", "serve", "--port", str(self.port), *flags],
            env=env_for(home),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ready(self, key: str, timeout: float = 120) -> float:
        """Seconds from the start to the first answered authenticated request."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{self.url}/api/v1/healthz", headers={"X-API-Key": key}, timeout=2)
                if r.status_code == 200:
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise TimeoutError("kitchen serve did not answer")

    def peak_rss_mb(self) -> float:
        """The server's peak RSS with its model process's: the sum of each one's own peak
        (``VmHWM``), which is at least the peak of their sum."""
        pid = self.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sum(peak_mb(p) for p in [pid, *map(int, children)])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    home = work / "load"
    home.mkdir()
    key = make_key(home)
    server = Server(home, "--max-resident-models", str(args.max_resident))
    server.ready(key)
    env = env_for(work, TINKER_BASE_URL=server.url, TINKER_API_KEY=key)
    clients = []
    for n in range(args.clients):
        out = work / f"client-{n}.json"
        cmd = [sys.executable, "-c", CLIENT, str(out), "kitchen/tiny", str(n + 1)]
        cmd += [str(args.seconds), str(args.sample_every)]
        clients.append((out, subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)))
    for _, proc in clients:
        proc.wait(timeout=args.seconds + 600)
    rss = server.peak_rss_mb()
    server.stop()
    results = [json.loads(out.read_text()) for out, _ in clients]
    lat = [x for r in results for x in r["latencies"]]
    statuses = [s for r in results for s in r["statuses"]]
    checks = check_log(home, results)
    return {
        "clients": args.clients,
        "seconds": args.seconds,
        "max_resident": args.max_resident,
        "steps": sum(r["steps"] for r in results),
        "samples": sum(r["samples"] for r in results),
        "requests_timed": len(lat),
        "p50_ms": round(1000 * statistics.median(lat), 1),
        "p99_ms": round(1000 * percentile(lat, 0.99), 1),
        "http_5xx": sum(1 for s in statuses if s >= 500),
        "http_429": sum(1 for s in statuses if s == 429),
        "http_responses": len(statuses),
        "server_peak_rss_mb": round(rss, 1),
        **checks,
    }


def check_log(home: Path, results: list[dict[str, Any]]) -> dict[str, Any]:
    from kitchen.store import open_store

    store = open_store(f"sqlite:///{home / 'kitchen.db'}")
    lost = duplicated = unloads = 0
    try:
        for r in results:
            session, _, n = r["model_id"].partition(":train:")
            rows = store.read(f"{session}-train-{n}")
            seq_ids = [
                e.payload["outputs"]["seq_id"]
                for e in rows
                if e.type == "StageCompleted" and "seq_id" in (e.payload.get("outputs") or {})
            ]
            steps = sum(
                1 for e in rows if e.type == "StageCompleted" and e.payload["stage"] == "optim_step"
            )
            duplicated += len(seq_ids) - len(set(seq_ids))
            lost += (max(seq_ids) - len(set(seq_ids))) if seq_ids else 0
            lost += abs(steps - r["steps"])
            unloads += sum(
                1 for e in rows if e.type == "CheckpointSaved" and "-u" in e.payload["name"]
            )
    finally:
        store.close()
    return {"lost_steps_or_requests": lost, "duplicated_requests": duplicated, "unloads": unloads}


def memory(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from kitchen.testing.tiny_llama import write_tiny_llama

    base = write_tiny_llama(work / "base-300mb", hidden=1024, layers=9, heads=16)
    size = sum(f.stat().st_size for f in base.glob("*.safetensors")) / 2**20
    out: dict[str, Any] = {"base_mb_on_disk": round(size, 1)}
    for models in (1, args.mem_models):
        home = work / f"mem-{models}"
        home.mkdir()
        key = make_key(home)
        server = Server(home, "--base-model", str(base))
        server.ready(key)
        env = env_for(work, TINKER_BASE_URL=server.url, TINKER_API_KEY=key)
        t0 = time.monotonic()
        subprocess.run(
            [sys.executable, "-c", MEM_CLIENT, str(base), str(models), str(args.mem_steps)],
            env=env,
            check=True,
            stderr=subprocess.DEVNULL,
        )
        out[f"rss_mb_{models}_models"] = round(server.peak_rss_mb(), 1)
        out[f"seconds_{models}_models"] = round(time.monotonic() - t0, 1)
        server.stop()
    out["ratio"] = round(out[f"rss_mb_{args.mem_models}_models"] / out["rss_mb_1_models"], 3)
    return out


def on_record(home: Path, count: int) -> str:
    """``count`` served models written through the server's journal, each with a few requests;
    returns one model id."""
    from kitchen.serve import ids, keys
    from kitchen.serve import journal as jr
    from kitchen.store import open_store

    store = open_store(f"sqlite:///{home / 'kitchen.db'}")
    journal = jr.Journal(store, home)
    owner = keys.read(home / "serve")[0].id
    model_id = ""
    try:
        session = ids.new_session_id()
        journal.save_session(session, owner, {})
        for n in range(count):
            model_id = ids.model_id(session, n)
            spec = jr.ModelSpec(model_id, session, n, owner, "kitchen/tiny", 8, n)
            journal.create_model(spec, {"kitchen": "bench"})
            body = json.dumps({"learning_rate": 1e-3}).encode()
            for seq_id in range(1, 4):
                ref = journal.put_input(owner, body)
                journal.record_request(spec, "optim_step", seq_id, ref, seq_id - 1, "ready")
    finally:
        journal.close()
        store.close()
    return model_id


def startup(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import httpx

    out: dict[str, Any] = {}
    for count in (0, args.startup_models):
        home = work / f"start-{count}"
        home.mkdir()
        key = make_key(home)
        model_id = on_record(home, count) if count else ""
        times = []
        for _ in range(args.repeats):
            server = Server(home)
            times.append(server.ready(key))
            if count and not out.get("first_request_s"):
                t0 = time.monotonic()
                r = httpx.post(
                    f"{server.url}/api/v1/get_info",
                    json={"model_id": model_id},
                    headers={"X-API-Key": key},
                    timeout=120,
                )
                assert r.status_code == 200, r.text
                out["first_request_s"] = round(time.monotonic() - t0, 3)
            server.stop()
        out[f"ready_s_{count}_models"] = [round(t, 2) for t in times]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--max-resident", type=int, default=4)
    p.add_argument("--sample-every", type=int, default=10)
    p.add_argument("--mem-models", type=int, default=8)
    p.add_argument("--mem-steps", type=int, default=2)
    p.add_argument("--startup-models", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip", default="", help="comma-separated parts to skip")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory(prefix="kitchen-serve-load-") as tmp:
        work = Path(tmp)
        for name, part in (("load", load), ("memory", memory), ("startup", startup)):
            if name in skip:
                continue
            t0 = time.monotonic()
            result = part(args, work)
            result["wall_s"] = round(time.monotonic() - t0, 1)
            print(json.dumps({name: result}), flush=True)


if __name__ == "__main__":
    main()
