"""Preemption through the real CLI: SIGTERM or SIGUSR1 mid-run ends the attempt with a
*preemption* checkpoint of the last finished step and exit 143; the resume re-executes no step
that checkpoint holds and ends byte-identical to an uninterrupted run.

The signal is real (the kernel delivers it) and lands at a known moment: the ``SIGTERM`` /
``SIGUSR1`` actions of a fault point make the process send it to itself there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import SMALL_RL_CONFIG, SMALL_SL_CONFIG, adapter_sha, replay_json


def _checkpoints(doc: dict[str, Any]) -> list[tuple[int, bool]]:
    return [
        (e["payload"]["step"], bool(e["payload"].get("preemption")))
        for e in doc["events"]
        if e["type"] == "CheckpointSaved"
    ]


def _optim_steps(doc: dict[str, Any]) -> list[int]:
    """The step of every completed optimizer step in the log, re-executions included."""
    return [
        e["payload"]["step"]
        for e in doc["events"]
        if e["type"] == "StageCompleted" and e["payload"]["stage"] == "optim_step"
    ]


def test_sigterm_mid_run_saves_a_preemption_checkpoint_and_the_resume_repeats_nothing(
    tmp_path: Path, reference: str
) -> None:
    kitchen = make_kitchen(tmp_path / "home")
    # The optimizer step of step 6 (its 7th): steps 5 and 6 are in flight (pipelined); the
    # attempt drains them and saves a checkpoint holding 7 steps, which save_every=5 would not.
    r = kitchen(
        "run",
        "sl_basic",
        *SMALL_SL_CONFIG,
        "--run-id",
        "pre",
        extra_env={"KITCHEN_FAULT": "stage:optim_step:before@7=SIGTERM"},
    )
    assert r.code == 143, r.stderr[-800:]
    assert "SIGTERM received; preempted" in r.stderr
    doc = replay_json(kitchen, "pre")
    assert _checkpoints(doc) == [(5, False), (7, True)]
    last = doc["events"][-1]
    assert last["type"] == "AttemptInterrupted"
    assert last["payload"]["reason"] == "preempted"
    assert doc["state"]["status"] == "interrupted"

    r = kitchen("resume", "pre")
    assert r.code == 0, r.stderr[-800:]
    assert adapter_sha(tmp_path / "home", "pre") == reference
    doc = replay_json(kitchen, "pre")
    steps = _optim_steps(doc)
    assert sorted(steps) == list(range(20))  # each step once: none re-executed
    resumed = [e for e in doc["events"] if e["type"] == "RunResumed"]
    assert [e["payload"]["from_step"] for e in resumed] == [7]
    assert kitchen("replay", "pre", "--verify").code == 0


@pytest.mark.slow
def test_sigusr1_preempts_rl_between_steps_and_the_resume_resamples_nothing(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    ref = kitchen("run", "rl_basic", *SMALL_RL_CONFIG, "--run-id", "ref")
    assert ref.code == 0, ref.stderr[-800:]
    r = kitchen(
        "run",
        "rl_basic",
        *SMALL_RL_CONFIG,
        "--run-id",
        "pre",
        extra_env={"KITCHEN_FAULT": "stage:optim_step:before@3=SIGUSR1"},
    )
    assert r.code == 143, r.stderr[-800:]
    doc = replay_json(kitchen, "pre")
    assert _checkpoints(doc) == [(2, False), (3, True)]
    r = kitchen("resume", "pre")
    assert r.code == 0, r.stderr[-800:]
    assert adapter_sha(home, "pre") == adapter_sha(home, "ref")
    doc = replay_json(kitchen, "pre")
    rollouts = [
        e["payload"]["step"]
        for e in doc["events"]
        if e["type"] == "StageCompleted" and e["payload"]["stage"] == "rollouts"
    ]
    assert rollouts == list(range(6))  # no step's rollouts ran twice
