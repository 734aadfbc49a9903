"""The Collectives contract on one process and on two real processes (torchrun, gloo)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from kitchen.ports import Collectives, SingleProcess
from kitchen.testing.collectives_contract import check


def test_one_process_keeps_the_contract() -> None:
    c = SingleProcess()
    assert isinstance(c, Collectives)
    check(c)


def _torchrun(*args: str, timeout_s: str = "20") -> subprocess.CompletedProcess[str]:
    torchrun = shutil.which("torchrun") or "torchrun"
    env = {**os.environ, "KITCHEN_DIST_TIMEOUT_S": timeout_s}
    return subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "kitchen.testing.collectives_contract",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_torch_distributed_keeps_the_contract_on_two_processes() -> None:
    r = _torchrun()
    assert r.returncode == 0, r.stderr[-3000:]
    # the two processes share torchrun's stdout: their lines may run into each other
    assert sorted(re.findall(r"rank \d: the Collectives contract holds", r.stdout)) == [
        "rank 0: the Collectives contract holds",
        "rank 1: the Collectives contract holds",
    ]


def test_a_peer_that_left_is_peer_lost_not_a_hang() -> None:
    r = _torchrun("--lost-peer", timeout_s="15")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rank 0: the Collectives contract holds" in r.stdout
