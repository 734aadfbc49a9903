"""A kill inside a group commit: four SDK clients train a model each at once, and the server
is killed with SIGKILL while a burst of several models' requests is committed together (their
blobs written, their events not). None of them was acknowledged, so the SDK sends them again
to the restarted server; every model ends bit for bit as an in-process run of it alone, and
its log holds each request once, in order."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.serve.conftest import Server, base_env
from tests.serve.test_many_models import SCRIPT, supervise

pytestmark = pytest.mark.slow

MODELS = 4
BASES = ["kitchen/tiny", "kitchen/tiny"]


def test_a_kill_during_a_burst_loses_nothing_acknowledged(
    server: Server, serve_home: tuple[Path, str], tmp_path: Path
) -> None:
    from kitchen.store import open_store

    home, key = serve_home
    server.start("serve:commit:burst")
    reference = tmp_path / "alone.json"
    alone = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "inprocess",
            str(reference),
            *BASES,
            *map(str, range(MODELS)),
        ],
        env=base_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    env = {**base_env(tmp_path), "TINKER_BASE_URL": server.url, "TINKER_API_KEY": key}
    clients, logs = [], []
    for n in range(MODELS):
        logs.append(open(tmp_path / f"client-{n}.log", "wb"))  # noqa: SIM115
        clients.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(SCRIPT),
                    "served",
                    str(tmp_path / f"served-{n}.json"),
                    *BASES,
                    str(n),
                ],
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
    assert fired == [-9]  # killed once, inside a group commit of several models

    _, err = alone.communicate(timeout=200)
    assert alone.returncode == 0, err.decode()[-3000:]
    expected = json.loads(reference.read_text())
    for n in range(MODELS):
        got = json.loads((tmp_path / f"served-{n}.json").read_text())
        assert got[str(n)] == expected[str(n)], f"model {n}"  # == on floats: bit for bit

    store = open_store(f"sqlite:///{home / 'kitchen.db'}")
    try:
        for run in store.list_runs(recipe="served"):
            requests = [
                e.payload
                for e in store.read(run.run_id)
                if e.type == "StageCompleted" and "seq_id" in (e.payload.get("outputs") or {})
            ]
            seq_ids = [p["outputs"]["seq_id"] for p in requests]
            assert seq_ids == list(range(1, len(seq_ids) + 1)), seq_ids  # each once, in order
            assert sum(p["stage"] == "optim_step" for p in requests) == 4
    finally:
        store.close()
