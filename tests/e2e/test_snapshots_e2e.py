"""Snapshots in a real run: `kitchen run sl_basic` (real torch training) killed mid-run, then
`kitchen resume`d, with a snapshot every 40 events. The snapshots equal the fold of the log
(`replay --verify` compares them), and the result is the uninterrupted run's, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kitchen.testing.cli import Kitchen
from kitchen.testing.runs import SMALL_SL_CONFIG as CONFIG
from kitchen.testing.runs import STEPS, adapter_sha

EVERY = {"KITCHEN_SNAPSHOT_EVERY": "40"}


@pytest.mark.slow
def test_a_killed_run_with_snapshots_resumes_to_the_same_result(
    kitchen: Kitchen, home: Path
) -> None:
    plain = kitchen(
        "run", "sl_basic", *CONFIG, "--run-id", "plain", extra_env={"KITCHEN_SNAPSHOT_EVERY": "0"}
    )
    assert plain.code == 0, plain.stderr[-800:]

    fault = {"KITCHEN_FAULT": "stage:log_step_metrics:before@14"}
    r = kitchen("run", "sl_basic", *CONFIG, "--run-id", "snap", extra_env=EVERY | fault)
    assert r.code == -9, r.stderr[-800:]
    killed = kitchen("replay", "snap", "--verify")
    assert killed.code == 0, killed.stdout[-800:] + killed.stderr
    assert killed.stdout.splitlines()[-1].endswith(", 2 snapshots")  # the newest two are kept

    resumed = kitchen("resume", "snap", extra_env=EVERY)
    assert resumed.code == 0, resumed.stderr[-800:]
    done = kitchen("replay", "snap", "--verify")
    assert done.code == 0, done.stdout[-800:] + done.stderr
    assert done.stdout.splitlines()[-1].endswith(", final adapter, 2 snapshots")
    state = json.loads(kitchen("replay", "snap", "--json").stdout)["state"]
    assert (state["status"], state["step"]) == ("completed", STEPS)
    assert state["optim_steps"] == list(range(STEPS))
    assert adapter_sha(home, "snap") == adapter_sha(home, "plain")
