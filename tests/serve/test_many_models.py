"""Many users on one server: 8 models on 2 base models, at most 3 resident, trained and sampled
from 4 SDK client processes at once, the server killed with SIGKILL inside a group commit of
several models' requests (their blobs written, their events not committed: none of them
acknowledged) and restarted. Every model's losses, gradient norms and seeded samples equal an
in-process run of that model alone, bit for bit, and its log holds each request once, in
order; models were unloaded and reloaded on the way, and the restarted server took up the
models as their clients came back."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.serve.conftest import Server, base_env

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("many_script.py")
GROUPS = [[0, 1], [2, 3], [4, 5], [6, 7]]  # the models each client process drives
KILL_AT = "serve:commit:burst@2"  # the second group commit of several models' appends


def supervise(server: Server, clients: list[subprocess.Popen[bytes]], fired: list[int]) -> None:
    """Restart the server (unarmed) whenever it dies while a client still runs."""
    while any(c.poll() is None for c in clients):
        if not server.alive():
            assert server.proc is not None
            fired.append(server.proc.returncode)
            server.start(wait=False)
        time.sleep(0.05)


def test_many_models_on_two_bases_survive_a_kill(
    server: Server, serve_home: tuple[Path, str], tmp_path: Path
) -> None:
    from kitchen.store import open_store
    from kitchen.testing.tiny_llama import write_tiny_llama

    home, key = serve_home
    other = write_tiny_llama(tmp_path / "tiny-b", seed=1)
    bases = ["kitchen/tiny", str(other)]
    server.extra = ["--base-model", bases[0], "--base-model", bases[1]]
    server.extra += ["--max-resident-models", "3"]
    server.start(KILL_AT)

    reference = tmp_path / "alone.json"
    alone = subprocess.Popen(
        [sys.executable, str(SCRIPT), "inprocess", str(reference), *bases, *map(str, range(8))],
        env=base_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    env = {**base_env(tmp_path), "TINKER_BASE_URL": server.url, "TINKER_API_KEY": key}
    clients, logs = [], []
    for n, group in enumerate(GROUPS):
        logs.append(open(tmp_path / f"client-{n}.log", "wb"))  # noqa: SIM115
        out = str(tmp_path / f"served-{n}.json")
        clients.append(
            subprocess.Popen(
                [sys.executable, str(SCRIPT), "served", out, *bases, *map(str, group)],
                env=env,
                stdout=logs[-1],
                stderr=subprocess.STDOUT,
            )
        )
    fired: list[int] = []
    watcher = threading.Thread(target=supervise, args=(server, clients, fired), daemon=True)
    watcher.start()
    try:
        for c in clients:
            c.wait(timeout=200)
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
        watcher.join(10)
        for f in logs:
            f.close()
    for n, c in enumerate(clients):
        assert c.returncode == 0, (tmp_path / f"client-{n}.log").read_text()[-3000:]
    assert fired == [-9]  # killed once, inside a group commit

    _, err = alone.communicate(timeout=200)
    assert alone.returncode == 0, err.decode()[-3000:]
    expected = json.loads(reference.read_text())
    got: dict[str, Any] = {}
    for n in range(len(GROUPS)):
        got.update(json.loads((tmp_path / f"served-{n}.json").read_text()))
    assert sorted(got, key=int) == [str(i) for i in range(8)]
    for i in map(str, range(8)):
        assert got[i] == expected[i], f"model {i}"  # == on floats: bit for bit
    assert len({json.dumps(expected[i]["losses"]) for i in expected}) == 8  # 8 distinct models

    store = open_store(f"sqlite:///{home / 'kitchen.db'}")
    try:
        runs = store.list_runs(recipe="served")
        logs = {run.run_id: store.read(run.run_id) for run in runs}
    finally:
        store.close()
    assert len(runs) == 8
    saved = {
        run: [e.payload["name"] for e in events if e.type == "CheckpointSaved"]
        for run, events in logs.items()
    }
    for events in logs.values():
        requests = [
            e.payload
            for e in events
            if e.type == "StageCompleted" and "seq_id" in (e.payload.get("outputs") or {})
        ]
        seq_ids = [p["outputs"]["seq_id"] for p in requests]
        assert seq_ids == list(range(1, len(seq_ids) + 1)), seq_ids  # each once, in order
        assert sum(p["stage"] == "optim_step" for p in requests) == 4  # many_script's STEPS
    unloaded = [run for run, names in saved.items() if any("-u" in n for n in names)]
    assert unloaded, saved  # 8 models through 3 places: some were unloaded and came back
    # an unload's checkpoint is an ordinary one: replay --verify re-hashes it with the rest
    replay = subprocess.run(
        [sys.executable, "-m", "kitchen.cli", "replay", unloaded[0], "--verify"],
        env=base_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replay.returncode == 0, replay.stderr
    log = "".join((home / f"server-{n}.log").read_text() for n in range(server.starts))
    assert "unloaded" in log and "taking up" in log
