"""``kitchen serve --loggers``: a served model records its trackers, and its committed steps go
to them from its log, each once across server processes, those a process committed and never
sent included. Real SQLite store, real W&B offline files and TensorBoard event files; the
journal is driven as the server drives it (no model is loaded)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import wandb  # noqa: F401  (the test extra: missing, the test fails)
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util.tensor_util import make_ndarray

from kitchen.engine.tracker_runs import wandb_files, wandb_points
from kitchen.serve import ids
from kitchen.serve.journal import Journal, ModelSpec
from kitchen.store import open_store

SESSION = "sess-0123456789abcdef"
LOSS = {0: 2.5, 1: 2.25, 2: 2.0, 3: 1.75, 4: 1.5, 5: 1.25}  # exact in 32 bits too


def _tensorboard(folder: Path) -> list[tuple[str, int, float]]:
    return [
        (value.tag, int(event.step), float(make_ndarray(value.tensor).item()))
        for path in sorted(folder.glob("events.out.tfevents.*"))
        for event in EventFileLoader(str(path)).Load()
        for value in event.summary.value
    ]


def test_a_served_models_steps_reach_its_trackers_once_across_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    spec = ModelSpec(
        ids.model_id(SESSION, 0), SESSION, 0, "key-1", "kitchen/tiny", 4, 7,
        loggers=("tensorboard", "wandb"),
    )  # fmt: skip
    assert ModelSpec.from_config(spec.config()) == spec  # recorded with the model
    other = replace(spec, model_id=ids.model_id(SESSION, 1), model_seq_id=1, loggers=("wandb",))
    store = open_store(f"sqlite:///{tmp_path / 'kitchen.db'}")
    try:
        first = Journal(store, tmp_path)  # a server process
        first.create_model(spec, {"python": "3"})
        first.create_model(other, {"python": "3"})
        for step in (0, 1, 2):  # two models' runs open in one process at once
            first.record_metrics(spec, step, {"loss:sum": LOSS[step]})
            first.record_metrics(other, step, {"loss:sum": -LOSS[step]})
        first.close()
        # A server that committed step 3 and died before sending it: a journal whose model
        # names no tracker commits the same event and sends nothing.
        silent = Journal(store, tmp_path)
        silent.record_metrics(replace(spec, loggers=()), 3, {"loss:sum": LOSS[3]})
        silent.close()
        later = Journal(store, tmp_path)  # the next server process sends 3, then 4 and 5
        for step in (4, 5):
            later.record_metrics(spec, step, {"loss:sum": LOSS[step]})
        later.close()
    finally:
        store.close()

    expected = sorted(("train/loss:sum", step, value) for step, value in LOSS.items())
    folder = tmp_path / spec.run_dir
    assert sorted(_tensorboard(folder / "tensorboard")) == expected
    assert sorted(wandb_points(folder, spec.run_id)) == expected
    assert len(wandb_files(folder, spec.run_id)) == 2  # one W&B run, resumed by the second
    assert sorted(wandb_points(tmp_path / other.run_dir, other.run_id)) == sorted(
        ("train/loss:sum", step, -LOSS[step]) for step in (0, 1, 2)
    )


def test_the_flag_names_known_trackers_only(capsys: pytest.CaptureFixture[str]) -> None:
    from kitchen.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["serve", "--loggers", "tensorboard,neptune"])
    assert caught.value.code == 2
    assert "unknown logger 'neptune'; known: mlflow, tensorboard, wandb" in capsys.readouterr().err
