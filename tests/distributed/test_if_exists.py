"""``kitchen run … --run-id ID --if-exists resume``: the idempotent form a restarted job runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from kitchen.testing.cli import Kitchen, make_kitchen, one_line_error
from kitchen.testing.runs import adapter_sha

pytestmark = pytest.mark.slow

SL = ["max_steps=6", "save_every=3", "batch_size=8", "max_length=64", "eval_examples=4"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("if-exists") / "home"


@pytest.fixture(scope="module")
def kitchen(home: Path) -> Kitchen:
    run = make_kitchen(home)
    r = run("run", "sl_basic", *SL, "--run-id", "done")
    assert r.code == 0, r.stderr
    return run


def test_a_completed_run_exits_0_and_says_so(kitchen: Kitchen) -> None:
    r = kitchen("run", "sl_basic", *SL, "--run-id", "done", "--if-exists", "resume")
    assert r.code == 0, r.stderr
    assert r.stdout.strip() == "done"
    assert "already completed" in r.stderr


def test_by_default_an_existing_run_is_refused(kitchen: Kitchen) -> None:
    line = one_line_error(kitchen("run", "sl_basic", *SL, "--run-id", "done"))
    assert "already exists" in line and "kitchen resume done" in line


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("sl_basic", *SL, "learning_rate=0.01"), "another config"),
        (("dpo_basic", "max_steps=6"), "recipe 'sl_basic'"),
    ],
)
def test_another_identity_under_the_same_id_is_refused(
    kitchen: Kitchen, args: tuple[str, ...], what: str
) -> None:
    r = kitchen("run", *args, "--run-id", "done", "--if-exists", "resume")
    line = one_line_error(r)
    assert r.code == 2
    assert what in line and "--run-id" in line, line


def test_a_crashed_run_resumes_to_the_same_bytes(kitchen: Kitchen, home: Path) -> None:
    crash = {"KITCHEN_FAULT": "stage:optim_step:after@5"}
    r = kitchen("run", "sl_basic", *SL, "--run-id", "crashed", extra_env=crash)
    assert r.code == -9, r.stderr[-800:]
    r = kitchen("run", "sl_basic", *SL, "--run-id", "crashed", "--if-exists", "resume")
    assert r.code == 0, r.stderr
    assert adapter_sha(home, "crashed") == adapter_sha(home, "done")


def test_under_torchrun_a_run_needs_an_id(home: Path) -> None:
    torchrun = shutil.which("torchrun") or "torchrun"
    r = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node=1", "-m", "kitchen", "run", "sl_basic"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "KITCHEN_HOME": str(home / "nameless")},
    )
    assert r.returncode != 0
    assert "kitchen: error: under torchrun a run needs a name" in r.stderr
    assert not (home / "nameless" / "kitchen.db").exists()


def test_a_failed_run_is_not_resumed(kitchen: Kitchen) -> None:
    diverge = ("sl_basic", *SL, "learning_rate=1e30", "--run-id", "nan")
    assert kitchen("run", *diverge).code == 1
    r = kitchen("run", *diverge, "--if-exists", "resume")
    line = one_line_error(r)
    assert r.code == 1
    assert "is failed, which no resume undoes" in line, line


def test_a_requeue_waits_for_the_lease_of_a_dead_node(kitchen: Kitchen, home: Path) -> None:
    """The node that ran the job died holding the lease (another host: its process cannot be
    checked from here); the requeued command waits for the lease to expire, then resumes."""
    from kitchen.store import open_store

    crash = {"KITCHEN_FAULT": "stage:optim_step:after@5"}
    r = kitchen("run", "sl_basic", *SL, "--run-id", "requeued", extra_env=crash)
    assert r.code == -9
    store = open_store(f"sqlite:///{home / 'kitchen.db'}")
    try:
        store.acquire_lease(
            "requeued", "dead-node:1:ab", host="dead-node", pid=1, attempt=2, ttl_s=15
        )
    finally:
        store.close()
    t0 = time.monotonic()
    r = kitchen("run", "sl_basic", *SL, "--run-id", "requeued", "--if-exists", "resume")
    assert r.code == 0, r.stderr[-2000:]
    assert "leased to dead-node:1:ab on dead-node" in r.stderr
    assert time.monotonic() - t0 >= 14  # it cannot finish before the lease expires
    assert adapter_sha(home, "requeued") == adapter_sha(home, "done")
