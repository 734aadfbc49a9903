"""kitchen.api driven from Python, in this process: a run stopped by SIGINT (as Ctrl-C or a
notebook's interrupt stops it) raises with its handle and is resumed to the end; a fork of it;
its handle read back (status, config, metrics as rows, checkpoints, lineage, adapter, a sample
the same as ``kitchen sample``'s); a diverged run raises carrying its handle; bad input raises
the CLI's error with nothing written; and ``import kitchen.api`` loads no model library."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kitchen.api as kt
from kitchen.errors import ConfigError, NotFound
from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import step_metrics

CONFIG = {
    "max_steps": 8,
    "save_every": 4,
    "batch_size": 8,
    "max_length": 64,
    "eval_examples": 4,
    "eval_max_tokens": 4,
}
"""8 steps, checkpoints at 4 and 8: seconds of training."""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [k for k in os.environ if k.startswith(("KITCHEN_", "OTEL_"))]:
        monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("KITCHEN_HOME", str(home))
    return home


@pytest.fixture
def sigint_at_step() -> Iterator[list[int]]:
    """Send this process SIGINT, as Ctrl-C does, once run ``interrupted`` has logged the step
    put in the list (polled from the log by a thread)."""
    armed: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if armed:
                with contextlib.suppress(NotFound):
                    run = kt.load("interrupted")
                    if run.step >= armed[0] and run.status == "running":
                        os.kill(os.getpid(), signal.SIGINT)
                        return
            time.sleep(0.05)

    # Outside the run's attempt (which sets its own handler and restores this one), a SIGINT
    # that came too late fails the test instead of stopping the whole session.
    late: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: late.append(signum))
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield armed
    finally:
        done.set()
        thread.join(timeout=5)
        signal.signal(signal.SIGINT, old)
    assert not late, "the SIGINT reached the test after the run had ended"


@pytest.mark.slow
def test_run_interrupt_resume_fork_load_sample(home: Path, sigint_at_step: list[int]) -> None:
    sigint_at_step.append(2)
    with pytest.raises(kt.RunInterrupted) as stopped:
        kt.run(
            "sl_basic", config={**CONFIG, "adapters.training": "local_torch"}, run_id="interrupted"
        )
    handle = stopped.value.run
    assert handle == kt.Run("interrupted")
    assert stopped.value.exit_code == 130
    assert handle.status == "interrupted"
    assert 2 <= handle.step < 8
    assert "kitchen.api.resume('interrupted')" in str(stopped.value)

    run = kt.resume(handle)
    assert run.status == "completed"
    assert run.step == 8
    assert run.recipe == "sl_basic"
    assert run.config["max_steps"] == 8 and run.config["adapters"]["training"] == "local_torch"

    rows = run.metrics
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5, 6, 7]
    logged = step_metrics(home, "interrupted")  # kitchen show's values: the last execution's
    assert rows == [{"step": s, **logged[s]} for s in range(8)]
    assert all(r["train_mean_nll"] > 0 for r in rows)
    assert [r["step"] for r in run.eval_metrics] == sorted(r["step"] for r in run.eval_metrics)
    assert [(c.name, c.step, c.final) for c in run.checkpoints] == [
        ("step-000004", 4, False),
        ("step-000008", 8, True),
    ]
    assert run.checkpoints[0].location == str(home / "interrupted/checkpoints/step-000004")
    adapter = run.adapter_path
    assert adapter == home / "interrupted/final"
    assert (adapter / "adapter_model.safetensors").is_file()
    assert run.lineage == [] and run.parent is None

    child = kt.fork(run, 4, run_id="child", learning_rate=1e-4)
    assert child.status == "completed" and child.step == 8
    assert child.parent == run
    fork_point = child.lineage[0]
    assert (fork_point["role"], fork_point["run_id"], fork_point["step"]) == (
        "fork",
        "interrupted",
        4,
    )
    assert fork_point["overrides"] == {"learning_rate": 1e-4}
    assert child.metrics[0]["step"] == 4  # the fork logs only the steps after its fork point
    assert child.metrics[-1]["step"] == 7

    assert kt.load("child") == child
    assert kt.runs() == [run, child]
    assert kt.runs(status="completed", recipe="sl_basic") == [run, child]
    assert kt.runs(status="failed") == []

    reply = run.sample("What is 2+2?", max_tokens=8)
    cli = make_kitchen(home)("sample", "interrupted", "What is 2+2?", "--max-tokens", "8")
    assert cli.code == 0, cli.stderr
    assert reply == cli.stdout.removesuffix("\n")


@pytest.mark.slow
def test_a_failed_run_raises_carrying_its_handle(home: Path) -> None:
    with pytest.raises(kt.RunError) as failed:
        kt.run("sl_basic", run_id="nan", progress=False, learning_rate=1e30, **CONFIG)
    assert not isinstance(failed.value, kt.RunInterrupted)
    assert failed.value.exit_code == 1
    assert failed.value.run.status == "failed"
    assert str(failed.value).startswith(
        "run nan ended failed (exit 1) at step 2: TrainingDiverged: loss is nan at step 1"
    )
    with pytest.raises(ConfigError, match="is failed; there is nothing to resume"):
        kt.resume("nan")


def test_bad_input_raises_the_clis_error_and_writes_nothing(home: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'lerning_rate'"):
        kt.run("sl_basic", lerning_rate=1e-3)
    with pytest.raises(ConfigError, match=r"max_steps: .*\(got -1\)"):
        kt.run("sl_basic", config={"max_steps": -1})
    with pytest.raises(ConfigError, match=r"unknown training adapter 'nope'"):
        kt.run("sl_basic", config={"adapters.training": "nope"})
    with pytest.raises(ConfigError, match=r"config file .* not found"):
        kt.run("sl_basic", config=tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"run id 'a b' is not allowed"):
        kt.run("sl_basic", run_id="a b")
    with pytest.raises(NotFound):
        kt.run("no_such_recipe")
    assert not (home / "kitchen.db").exists()
    assert kt.runs() == []
    with pytest.raises(NotFound, match="no run 'ghost'"):
        kt.load("ghost")
    with pytest.raises(NotFound, match="no run 'ghost'"):
        kt.resume("ghost")
    with pytest.raises(ConfigError, match="unknown status 'done'"):
        kt.runs(status="done")


def test_importing_kitchen_and_its_api_loads_no_model_library() -> None:
    code = "import kitchen, sys; kitchen.api; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "kitchen.api" in out
    heavy = {"torch", "transformers", "peft", "datasets", "kitchen.engine.runner"}
    assert not heavy & set(out), sorted(heavy & set(out))
