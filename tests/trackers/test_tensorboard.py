"""loggers=tensorboard: a run killed twice and resumed has every step in its TensorBoard event
files exactly once, read back with tensorboard's own event reader, with the values `kitchen
show` has (as 32-bit floats, which is what TensorBoard keeps; the killed run is
tests/trackers/test_mlflow_wandb.py's, which feeds every tracker at once); `kitchen track`
back-fills a run that ran without it and sends nothing twice; without the setting nothing is
written."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util.tensor_util import make_ndarray

from kitchen.testing.cli import make_kitchen, one_line_error
from kitchen.testing.runs import step_metrics

CONFIG = [
    "max_steps=8",
    "save_every=4",
    "batch_size=8",
    "max_length=64",
    "eval_examples=4",
    "eval_max_tokens=4",
]

TIMINGS = ("train/step_time_s", "train/tokens_per_s")


def _f32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _points(run_dir: Path) -> list[tuple[str, int, float]]:
    out = []
    for path in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                # the loader hands a scalar back as a tensor, as TensorBoard reads it
                out.append((value.tag, int(event.step), float(make_ndarray(value.tensor).item())))
    return out


def tb_points_expected(logged: dict[int, dict[str, object]]) -> set[tuple[str, int, float]]:
    """kitchen show's train points as TensorBoard keeps them (32-bit floats)."""
    return {
        (f"train/{name}", step, _f32(float(value)))
        for step, metrics in logged.items()
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def check_tensorboard(home: Path, run_id: str, logged: dict[int, dict[str, object]]) -> None:
    """A run fed to TensorBoard through kills (tests/trackers/test_mlflow_wandb.py runs it with
    the other trackers): every step once, kitchen show's values; deleted, `kitchen track`
    rebuilds the files with them."""
    got = _points(home / run_id)
    train = [(tag, step) for tag, step, _ in got if tag == "train/train_mean_nll"]
    assert sorted(train) == [("train/train_mean_nll", s) for s in range(8)]  # each once
    pairs = [(tag, step) for tag, step, _ in got]
    assert len(pairs) == len(set(pairs))  # no point of any tag twice
    expected = tb_points_expected(logged)
    # Timings differ from one execution of a step to the next: a re-executed step keeps its
    # first execution's in TensorBoard (kitchen show has the last); every other value is the
    # same, as the runner checks a re-executed step against its log.
    assert {p for p in got if p[0].startswith("train/") and p[0] not in TIMINGS} == {
        p for p in expected if p[0] not in TIMINGS
    }
    assert any(tag == "eval/test/nll" for tag, _, _ in got)
    assert len(list((home / run_id / "tensorboard").glob("events.out.tfevents.*"))) >= 2

    shutil.rmtree(home / run_id / "tensorboard")
    r = make_kitchen(home)("track", run_id, "--to", "tensorboard")
    assert r.code == 0, r.stderr
    refilled = _points(home / run_id)
    assert {p for p in refilled if p[0].startswith("train/")} == expected  # kitchen show's


@pytest.mark.slow
def test_a_run_without_the_setting_is_backfilled_once(tmp_path: Path) -> None:
    """A run without the setting writes nothing; `kitchen track` back-fills it with kitchen
    show's values, then sends nothing twice."""
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    r = kitchen("run", "sl_basic", *CONFIG, "--run-id", "plain")
    assert r.code == 0, r.stderr[-800:]
    assert not (home / "plain" / "tensorboard").exists()
    r = kitchen("track", "plain", "--to", "tensorboard")
    assert r.code == 0, r.stderr
    assert "tensorboard: wrote" in r.stderr and "(0 were there already)" in r.stderr
    backfilled = _points(home / "plain")
    assert {p for p in backfilled if p[0].startswith("train/")} == tb_points_expected(
        step_metrics(home, "plain")
    )
    assert any(tag == "eval/test/nll" for tag, _, _ in backfilled)
    r = kitchen("track", "plain", "--to", "tensorboard")
    assert r.code == 0 and "tensorboard: wrote 0 of the run's" in r.stderr
    assert sorted(_points(home / "plain")) == sorted(backfilled)


def test_bad_logger_and_unknown_run_are_one_line(tmp_path: Path) -> None:
    kitchen = make_kitchen(tmp_path / "home")
    line = one_line_error(kitchen("run", "sl_basic", "loggers=tensorbord"))
    assert (
        "loggers.0: Input should be 'mlflow', 'tensorboard' or 'wandb' (got 'tensorbord')" in line
    )
    assert not (tmp_path / "home" / "kitchen.db").exists()
    line = one_line_error(kitchen("track", "ghost", "--to", "tensorboard"))
    assert "no run 'ghost'" in line
