"""One run on two real processes: ``torchrun --nproc-per-node 2 -m kitchen …`` on gloo.

Each case is a real torchrun launch of the embedded model on reduced configs. A killed run is
restarted by torchrun itself (``--max-restarts 1``), whose restarted workers carry on from the
log; it must end byte-identical to the uninterrupted two-process run, which also shows that two
two-process runs agree bit for bit and that no optimizer step was applied twice. A run on one
process agrees with one on two within float summation error, with the same held-out accuracy.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import Kitchen, make_kitchen, make_torchrun
from kitchen.testing.dpo import small_dpo_config, write_pairs
from kitchen.testing.runs import SMALL_RL_CONFIG, adapter_sha, replay_json

pytestmark = pytest.mark.slow

SL = [
    "max_steps=6",
    "save_every=3",
    "batch_size=8",
    "max_length=64",
    "eval_every=3",
    "eval_examples=8",
    "eval_max_tokens=4",
]
RL = [*SMALL_RL_CONFIG, "max_steps=4"]  # the RL crash tests' shape, 4 steps
ENV = {"KITCHEN_DIST_TIMEOUT_S": "60"}


def _done(r: Any) -> None:
    assert r.code == 0, f"exit {r.code}\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("torchrun") / "home"


@pytest.fixture(scope="module")
def two(home: Path) -> Kitchen:
    return make_torchrun(home, nproc=2, max_restarts=1)


@pytest.fixture(scope="module")
def one(home: Path) -> Kitchen:
    return make_kitchen(home)


@pytest.fixture(scope="module")
def sl2(two: Kitchen) -> str:
    _done(two("run", "sl_basic", *SL, "--run-id", "sl2", timeout=600, extra_env=ENV))
    return "sl2"


def _steps(kitchen: Kitchen, run_id: str, metric: str) -> dict[int, float]:
    state = replay_json(kitchen, run_id)["state"]
    return {int(k): float(v[metric]) for k, v in state["step_metrics"].items()}


def _evals(kitchen: Kitchen, run_id: str, metric: str) -> dict[int, float]:
    state = replay_json(kitchen, run_id)["state"]
    return {int(k): float(v[metric]) for k, v in state["eval_metrics"].items()}


def test_the_attempt_records_two_processes_on_gloo(one: Kitchen, sl2: str) -> None:
    attempts = replay_json(one, sl2)["state"]["attempts"]
    assert [(a["backend"]["world_size"], a["backend"]["dist_backend"]) for a in attempts] == [
        ("2", "gloo")
    ]


def test_one_process_and_two_agree_within_float_summation(
    one: Kitchen, two: Kitchen, home: Path, sl2: str
) -> None:
    _done(one("run", "sl_basic", *SL, "--run-id", "sl1", timeout=600))
    loss1, loss2 = _steps(one, "sl1", "train_mean_nll"), _steps(one, sl2, "train_mean_nll")
    assert sorted(loss1) == sorted(loss2) == [0, 1, 2, 3, 4, 5]
    for step in loss1:  # the same examples in every step, the same sums in another order
        assert loss2[step] == pytest.approx(loss1[step], rel=1e-3), (step, loss1, loss2)
    assert _evals(one, "sl1", "test/accuracy") == _evals(one, sl2, "test/accuracy")


def test_rank0_killed_then_restarted_by_torchrun_ends_byte_identical(
    one: Kitchen, two: Kitchen, home: Path, sl2: str
) -> None:
    env = {**ENV, "KITCHEN_FAULT": "rank0/stage:optim_step:after@5"}
    _done(two("run", "sl_basic", *SL, "--run-id", "sl2-kill0", timeout=600, extra_env=env))
    assert adapter_sha(home, "sl2-kill0") == adapter_sha(home, sl2)
    attempts = replay_json(one, "sl2-kill0")["state"]["attempts"]
    assert len(attempts) == 2 and attempts[1]["resumed_from"] is not None


def test_rank1_killed_then_resumed_with_torchrun_ends_byte_identical(
    one: Kitchen, home: Path, sl2: str
) -> None:
    """Without restarts the group stops when rank 1 dies; `torchrun … -m kitchen resume`
    carries the run on."""
    once = make_torchrun(home, nproc=2, max_restarts=0)
    env = {**ENV, "KITCHEN_FAULT": "rank1/stage:forward_backward:before@5"}
    r = once("run", "sl_basic", *SL, "--run-id", "sl2-kill1", timeout=600, extra_env=env)
    assert r.code != 0
    _done(once("resume", "sl2-kill1", timeout=600, extra_env=ENV))
    assert adapter_sha(home, "sl2-kill1") == adapter_sha(home, sl2)
    assert len(replay_json(one, "sl2-kill1")["state"]["attempts"]) == 2


def test_a_sharded_base_trains_what_a_replicated_one_does_and_resumes(
    one: Kitchen, two: Kitchen, home: Path, sl2: str
) -> None:
    """parallelism=fsdp shards the frozen base (FSDP2) and keeps LoRA whole: the same sums in
    the same order as the replicated run, so the same bytes, through a kill and a restart."""
    env = {**ENV, "KITCHEN_FAULT": "rank0/stage:optim_step:after@5"}
    r = two("run", "sl_basic", *SL, "parallelism=fsdp", "--run-id", "fsdp", extra_env=env)
    _done(r)
    assert adapter_sha(home, "fsdp") == adapter_sha(home, sl2)
    attempts = replay_json(one, "fsdp")["state"]["attempts"]
    assert [a["operating"]["parallelism"] for a in attempts] == ["fsdp", "fsdp"]


def test_dpo_on_two_processes(
    one: Kitchen, two: Kitchen, home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two processes twice (the second killed on rank 1 and restarted) give the same bytes;
    one process the same held-out accuracy and losses within float summation error."""
    config = small_dpo_config(write_pairs(tmp_path_factory.mktemp("pairs") / "pairs.jsonl"))
    _done(two("run", "dpo_basic", *config, "--run-id", "dpo2", timeout=600, extra_env=ENV))
    env = {**ENV, "KITCHEN_FAULT": "rank1/stage:optim_step:before@4"}
    _done(two("run", "dpo_basic", *config, "--run-id", "dpo2-kill1", timeout=600, extra_env=env))
    assert adapter_sha(home, "dpo2-kill1") == adapter_sha(home, "dpo2")
    _done(one("run", "dpo_basic", *config, "--run-id", "dpo1", timeout=600))
    loss1, loss2 = _steps(one, "dpo1", "dpo_loss"), _steps(one, "dpo2", "dpo_loss")
    assert sorted(loss1) == sorted(loss2)
    for step in loss1:
        assert loss2[step] == pytest.approx(loss1[step], abs=0.02), (step, loss1, loss2)
    assert _evals(one, "dpo1", "test/accuracy") == _evals(one, "dpo2", "test/accuracy")


def test_rl_on_two_processes_killed_and_restarted_is_byte_identical(
    one: Kitchen, two: Kitchen, home: Path
) -> None:
    _done(two("run", "rl_basic", *RL, "--run-id", "rl2", timeout=600, extra_env=ENV))
    env = {**ENV, "KITCHEN_FAULT": "rank0/stage:forward_backward:before@3"}
    _done(two("run", "rl_basic", *RL, "--run-id", "rl2-kill0", timeout=600, extra_env=env))
    assert adapter_sha(home, "rl2-kill0") == adapter_sha(home, "rl2")


def _stopped_processes_of(run_id: str) -> list[int]:
    """Processes of this launch that a SIGSTOP fault stopped (state T in /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if run_id.encode() in cmdline and stat.rsplit(")", 1)[1].split()[0] == "T":
            pids.append(int(proc.name))
    return pids


def test_a_hung_peer_ends_the_attempt_resumable_within_the_timeout(home: Path) -> None:
    """Rank 1 stops (SIGSTOP) before a step; rank 0 waits in the step's collective until
    KITCHEN_DIST_TIMEOUT_S, then ends the attempt as a fault outside the run. (The stopped
    process is let go once rank 0 is done, so torchrun need not wait to kill it.)"""
    launch = make_torchrun(home, nproc=2, max_restarts=0)
    env = {
        "KITCHEN_DIST_TIMEOUT_S": "10",
        "KITCHEN_FAULT": "rank1/stage:forward_backward:before@2=SIGSTOP",
    }
    result: list[Any] = []
    t0 = time.monotonic()
    thread = threading.Thread(
        target=lambda: result.append(
            launch("run", "sl_basic", *SL, "--run-id", "hung", timeout=600, extra_env=env)
        )
    )
    thread.start()
    reader = make_kitchen(home)
    status = None
    while thread.is_alive() and time.monotonic() - t0 < 300:
        time.sleep(1)
        r = reader("show", "hung", "--json")
        status = json.loads(r.stdout)["state"]["status"] if r.code == 0 else None
        if status == "interrupted":
            break
    took = time.monotonic() - t0
    for pid in _stopped_processes_of("hung"):
        os.kill(pid, signal.SIGCONT)
    thread.join(timeout=300)
    assert result and result[0].code != 0  # torchrun reports any worker's failure as 1
    state = replay_json(reader, "hung")["state"]
    assert state["status"] == "interrupted", state["status"]
    assert state["fault"][0] == "peer_lost", state["fault"]
    assert took < 10 + 60, took  # the timeout, and the processes' start
