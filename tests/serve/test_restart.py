"""Kill -9 of the server at listed points of the SDK loop, then a restart: the same client
process finishes, unmodified, and its results still equal the in-process run.

Each server incarnation is armed with the next fault point (``KITCHEN_FAULT``: the process
SIGKILLs itself exactly there); a supervisor restarts it when it dies. The last incarnation
runs clean. The rebuilds are then read back from the log: each re-applied at most N
optimizer steps (``--checkpoint-every 2`` here).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.serve.conftest import LOOP, Server, base_env
from tests.serve.test_sdk_loop import assert_same, sampler_files

pytestmark = pytest.mark.slow

# In the order the loop reaches them (each counted within its own server process).
FAULTS = [
    "serve:accept:forward_backward@2",  # on record, before the client got its request id
    "serve:execute:optim_step",  # between forward_backward and optim_step
    "serve:execute:forward_backward",  # accepted, future not yet retrieved
    "serve:save:mid",  # during save_state: written, not yet in place
    "serve:replay:optim_step",  # during the rebuild that follows
    "serve:checkpoint:after_blob",  # server-side checkpoint written, not yet recorded
    "serve:execute:save_weights_for_sampler",
    "serve:execute:forward",  # forward_backward_custom's forward pass
]


def supervise(server: Server, client: subprocess.Popen[bytes], fired: list[str]) -> None:
    queue = list(FAULTS[1:])
    while client.poll() is None:
        if not server.alive():
            assert server.proc is not None
            fired.append(f"exit {server.proc.returncode}")
            server.start(queue.pop(0) if queue else None, wait=False)
        time.sleep(0.05)


def test_kill_points(
    server: Server, serve_home: tuple[Path, str], reference: dict[str, Any], tmp_path: Path
) -> None:
    from kitchen.store import open_store

    home, key = serve_home
    server.start(FAULTS[0])
    env = {**base_env(tmp_path), "TINKER_BASE_URL": server.url, "TINKER_API_KEY": key}
    out = tmp_path / "served.json"
    with open(tmp_path / "client.log", "wb") as log:
        client = subprocess.Popen(
            [sys.executable, str(LOOP), "served", str(out)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        fired: list[str] = []
        watcher = threading.Thread(target=supervise, args=(server, client, fired), daemon=True)
        watcher.start()
        try:
            client.wait(timeout=420)
        finally:
            if client.poll() is None:  # timed out: stop the client, and so the watcher
                client.kill()
                client.wait()
            watcher.join(10)
    assert client.returncode == 0, (tmp_path / "client.log").read_text()[-3000:]
    assert fired == ["exit -9"] * len(FAULTS), fired
    import json

    served = json.loads(out.read_text())
    assert_same(served, reference)
    assert sampler_files(home) == reference["sampler_files"]

    store = open_store(f"sqlite:///{home / 'kitchen.db'}")
    rebuilds = [
        e.payload["outputs"]
        for run in store.list_runs(recipe="served")
        for e in store.read(run.run_id)
        if e.type == "StageCompleted" and e.payload["stage"] == "rebuild"
    ]
    store.close()
    assert rebuilds, "no rebuild was recorded"
    assert all(r["replayed_optim_steps"] <= server.every for r in rebuilds), rebuilds
