"""loggers=mlflow,tensorboard,wandb: a run killed twice and resumed has every step exactly
once in a real MLflow tracking server (SQLite backend store, read back with MLflow's client),
in W&B's offline files and in TensorBoard's event files, with the values `kitchen show` has,
though the MLflow server was down for one of the attempts: its points are sent by the next
one; the run that ended hands MLflow its final adapter, config and HTML report. `kitchen
track` sends nothing twice, and rebuilds W&B's and TensorBoard's files from the log with
kitchen show's values.

mlflow and wandb are imported here, not skipped: a CI without them fails."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import mlflow.tracking
import pytest
import wandb

from kitchen.engine.tracker_runs import wandb_files, wandb_points
from kitchen.testing.cli import make_kitchen
from kitchen.testing.mlflow_server import MlflowServer
from kitchen.testing.runs import events_of, step_metrics
from tests.trackers.test_tensorboard import CONFIG, TIMINGS, check_tensorboard


def eval_metrics(home: Path, run_id: str) -> dict[int, dict[str, Any]]:
    """The held-out metrics a run logged, by step (the last value of a re-executed step)."""
    out: dict[int, dict[str, Any]] = {}
    for e in events_of(home, run_id):
        if e["type"] == "StageCompleted" and e["payload"].get("eval_metrics"):
            out[int(e["payload"]["step"])] = dict(e["payload"]["eval_metrics"])
    return out


def _expected(logged: dict[int, dict[str, Any]]) -> set[tuple[str, int, float]]:
    return {
        (f"train/{name}", step, float(value))
        for step, metrics in logged.items()
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
        if f"train/{name}" not in TIMINGS
    }


def _mlflow_run(client: Any, kitchen_run: str) -> Any:
    runs = client.search_runs(
        [client.get_experiment_by_name("kitchen").experiment_id],
        filter_string=f"tags.`kitchen.run_id` = '{kitchen_run}'",
    )
    assert len(runs) == 1, runs  # one MLflow run across every attempt
    return runs[0]


def _mlflow_points(client: Any, run: Any) -> list[tuple[str, int, float]]:
    return [
        (key, int(m.step), float(m.value))
        for key in run.data.metrics
        for m in client.get_metric_history(run.info.run_id, key)
    ]


def _once(got: list[tuple[str, int, float]]) -> set[tuple[str, int, float]]:
    pairs = [(tag, step) for tag, step, _ in got]
    assert len(pairs) == len(set(pairs)), sorted(pairs)  # no (tag, step) twice
    steps = sorted(step for tag, step, _ in got if tag == "train/train_mean_nll")
    assert steps == list(range(8))  # every step, once
    assert any(tag == "eval/test/nll" for tag, _, _ in got)
    return {p for p in got if p[0].startswith("train/") and p[0] not in TIMINGS}


@pytest.mark.slow
def test_two_kills_a_tracker_outage_and_a_backfill(tmp_path: Path) -> None:
    # A W&B service started by this process, as by any in-process W&B user: its address
    # (WANDB_SERVICE) reaches the kitchen processes below, which must not use it — it would
    # outlive the killed attempts and refuse the next one's run ("run ID is in use").

    wandb.setup()
    assert os.environ.get("WANDB_SERVICE")
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    server = MlflowServer(tmp_path / "mlflow").start()
    env = {"MLFLOW_TRACKING_URI": server.uri, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    try:
        run = ["sl_basic", *CONFIG, "loggers=mlflow,tensorboard,wandb", "--run-id", "tr"]
        r = kitchen("run", *run, extra_env={**env, "KITCHEN_FAULT": "stage:optim_step:after@6"})
        assert r.code == -9, r.stderr[-800:]
        server.stop()  # the tracker goes down: the next attempt trains on without it
        r = kitchen("resume", "tr", extra_env={**env, "KITCHEN_FAULT": "stage:optim_step:after@3"})
        assert r.code == -9, r.stderr[-800:]
        assert "kitchen: logger mlflow stopped for this attempt" in r.stderr
        server.start()  # back: the last attempt sends what the one before missed
        r = kitchen("resume", "tr", extra_env=env)
        assert r.code == 0, r.stderr[-800:]
        assert "logger mlflow stopped" not in r.stderr

        logged = step_metrics(home, "tr")  # kitchen show's values: each step's last execution
        assert sorted(logged) == list(range(8))
        client = mlflow.tracking.MlflowClient(server.uri)
        found = _mlflow_run(client, "tr")
        assert _once(_mlflow_points(client, found)) == _expected(logged)
        opened = [e for e in events_of(home, "tr") if e["type"] == "TrackerRunOpened"]
        assert [e["payload"]["tracker_run_id"] for e in opened] == [found.info.run_id]
        assert found.info.status == "FINISHED"
        assert found.data.params["max_steps"] == "8"
        assert found.data.params["loggers"] == '["mlflow", "tensorboard", "wandb"]'
        assert found.data.tags["kitchen.recipe"] == "sl_basic"
        assert found.data.tags["kitchen.workflow"] == "supervised"
        kept = {a.path for a in client.list_artifacts(found.info.run_id)}
        assert {"config.json", "final", "report.html"} <= kept  # sent by the run as it ended
        final = {a.path for a in client.list_artifacts(found.info.run_id, "final")}
        assert "final/adapter_model.safetensors" in final

        check_tensorboard(home, "tr", logged)

        # W&B: one run resumed by kitchen's run id, a folder of files per attempt
        assert len(wandb_files(home / "tr", "tr")) == 3
        assert _once(wandb_points(home / "tr", "tr")) == _expected(logged)

        # `kitchen track` sends nothing twice; W&B's files deleted, it rebuilds them from the
        # log, with `kitchen show`'s values.
        r = kitchen("track", "tr", "--to", "mlflow", extra_env=env)
        assert r.code == 0 and "mlflow: wrote 0 of the run's" in r.stderr, r.stderr[-800:]
        assert {a.path for a in client.list_artifacts(found.info.run_id)} == kept
        shutil.rmtree(home / "tr" / "wandb")
        r = kitchen("track", "tr", "--to", "wandb", extra_env=env)
        assert r.code == 0 and "(0 were there already)" in r.stderr, r.stderr[-800:]
        assert len(wandb_files(home / "tr", "tr")) == 1
        got = wandb_points(home / "tr", "tr")
        assert len(got) == len({(tag, step) for tag, step, _ in got})
        assert set(got) == {
            (f"{kind}/{name}", step, float(value))
            for kind, metrics in (("train", logged), ("eval", eval_metrics(home, "tr")))
            for step, values in metrics.items()
            for name, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }  # every point of the run, timings included, as kitchen show has them
    finally:
        server.stop()
