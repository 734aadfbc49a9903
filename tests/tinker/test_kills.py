"""Killing either side mid-run: the client (SIGKILL, then ``kitchen resume``, which continues
from the newest Tinker checkpoint) or the server (kill -9 and a restart, which the run rides
out without a resume). The final adapter is the same bytes as an uninterrupted local run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.compare import files

pytestmark = pytest.mark.slow
TINKER = "adapters.training=tinker"
SL = [
    "max_steps=6",
    "save_every=2",
    "batch_size=8",
    "max_length=64",
    "eval_examples=4",
    "eval_max_tokens=4",
    "seed=0",
]


def local_final(kitchen_for: Any) -> dict[str, bytes]:
    local, home = kitchen_for("local")
    r = local("run", "sl_basic", *SL, "--run-id", "r")
    assert r.code == 0, r.stderr[-2000:]
    return files(home / "r" / "final")


def test_a_killed_client_resumes_from_the_newest_tinker_checkpoint(
    kitchen_for: Any, served: Any
) -> None:
    expected = local_final(kitchen_for)
    remote, home = kitchen_for("tinker", served)
    r = remote(
        "run",
        "sl_basic",
        *SL,
        TINKER,
        "--run-id",
        "r",
        extra_env={"KITCHEN_FAULT": "stage:get_batch:after@5"},
    )
    assert r.code == -9, r.stderr[-2000:]
    r = remote("resume", "r")
    assert r.code == 0, r.stderr[-2000:]
    events = json.loads(remote("replay", "r", "--json").stdout)["events"]
    loaded = [
        e["payload"]["outputs"]["loaded_step"]
        for e in events
        if e["type"] == "StageCompleted" and "loaded_step" in (e["payload"].get("outputs") or {})
    ]
    assert loaded == [4]  # killed in step 5: the newest checkpoint holds step 4
    saved = [e["payload"] for e in events if e["type"] == "CheckpointSaved"]
    assert saved and all(p["location"] == "remote" for p in saved)
    assert all(p["uri"].startswith("tinker://") for p in saved)
    assert files(home / "r" / "final") == expected


def test_a_server_killed_and_restarted_mid_run_does_not_stop_the_run(
    kitchen_for: Any, own_server: Any, tmp_path: Path
) -> None:
    expected = local_final(kitchen_for)
    home = tmp_path / "client"
    home.mkdir()
    client = own_server.client(home, "run", "sl_basic", *SL, TINKER, "--run-id", "r")
    assert client.stdout is not None
    lines: list[str] = []
    for line in client.stdout:
        lines.append(line)
        if line.startswith("step 3/"):
            own_server.kill()
            time.sleep(1.0)
            own_server.start()
            break
    lines.extend(client.stdout)
    client.stdout.close()
    assert client.wait(300) == 0, "".join(lines)[-3000:]
    assert own_server.starts == 2
    assert files(home / "r" / "final") == expected
    replay = own_server.client(home, "replay", "r", "--json")
    out, _ = replay.communicate(timeout=120)
    assert [e for e in json.loads(out)["events"] if e["type"] == "RunResumed"] == []
