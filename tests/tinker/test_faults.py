"""The Tinker service unreachable in the middle of a run: the attempt ends resumable (exit 75),
not failed; ``kitchen resume`` against the service, killed and started again meanwhile,
completes with the same bytes as an uninterrupted local run.

The SDK retries a connection for up to two hours before it gives up, so the unreachable
service is injected where the adapter takes an SDK future's result (``KITCHEN_FAULT=
tinker:result@N=ECONNREFUSED``): the real translation, runner and CLI do the rest. The server
is then killed for real and restarted before the resume.
"""

from __future__ import annotations

import json
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


def test_a_service_unreachable_mid_run_ends_the_attempt_resumable(
    kitchen_for: Any, own_server: Any
) -> None:
    local, local_home = kitchen_for("local")
    r = local("run", "sl_basic", *SL, "--run-id", "r")
    assert r.code == 0, r.stderr[-2000:]
    expected = files(local_home / "r" / "final")

    remote, home = kitchen_for("tinker", own_server)
    fault = {"KITCHEN_FAULT": "tinker:result@20=ECONNREFUSED"}
    r = remote("run", "sl_basic", *SL, TINKER, "--run-id", "r", extra_env=fault)
    assert r.code == 75, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "fault (" in ln]
    assert lines == [
        "  fault (service_unavailable): the Tinker service is unreachable: ConnectionRefusedError"
    ], r.stderr[-3000:]
    runs = json.loads(remote("runs", "--json").stdout)
    assert [(row["run_id"], row["status"]) for row in runs] == [("r", "interrupted")]
    events = json.loads(remote("replay", "r", "--json").stdout)["events"]
    assert events[-1]["type"] == "AttemptInterrupted"
    assert events[-1]["payload"]["fault"] == "service_unavailable"
    assert (events[-1]["payload"]["stage"], events[-1]["payload"]["step"]) == ("await_future", 3)
    assert not [e for e in events if e["type"] in ("RunFailed", "StageFailed")]

    own_server.kill()
    own_server.start()
    r = remote("resume", "r")
    assert r.code == 0, r.stderr[-3000:]
    assert files(home / "r" / "final") == expected
    events = json.loads(remote("replay", "r", "--json").stdout)["events"]
    resumed = [e["payload"] for e in events if e["type"] == "RunResumed"]
    assert [p["from_step"] for p in resumed] == [2]  # the newest Tinker checkpoint
