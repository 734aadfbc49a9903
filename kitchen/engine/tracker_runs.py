"""The trackers that keep runs of their own: MLflow and Weights & Biases (docs/trackers.md).

Both are configured the way their users configure them: MLflow by ``MLFLOW_TRACKING_URI``
(and ``MLFLOW_EXPERIMENT_NAME`` or ``MLFLOW_EXPERIMENT_ID``; experiment ``kitchen`` when
neither is set), W&B by ``WANDB_PROJECT`` (``kitchen`` when unset), ``WANDB_ENTITY``,
``WANDB_MODE`` and ``WANDB_DIR`` (the run's folder when unset). Their libraries are imported
here only, when a run names them.

One kitchen run is one tracker run across all its attempts:

- MLflow's run id is put on record (``TrackerRunOpened``) when the run is opened there, and
  every later attempt, and ``kitchen track``, continues it (one whose event a kill lost is
  found again by its ``kitchen.run_id`` tag);
- W&B's run id is kitchen's run id: each attempt resumes it (``resume="allow"``).

Points are keyed by the optimizer step: MLflow's ``step``; W&B's ``optimizer_step``, the
x-axis every ``train/*`` and ``eval/*`` metric is defined against (W&B's own ``_step`` only
counts the rows it was sent, and a logged row is never rewritten).
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kitchen.engine import events as ev
from kitchen.engine.state import RunState

PROJECT = "kitchen"  # MLflow's experiment and W&B's project when the environment names none
RUN_TAG = "kitchen.run_id"
PARAM_MAX = 6000  # MLflow keeps a parameter's value up to this many characters
# MLflow's client retries a request for minutes by default; a tracker that is down must not
# hold training that long. The user's own settings win.
MLFLOW_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
STATUS = {"completed": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}


def flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as ``a.b`` keys and text values (JSON for anything but a string)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flat(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return out


def labels(state: RunState) -> dict[str, str]:
    """The run's tags: its id, recipe, workflow and lineage."""
    lineage = [ref.model_dump(mode="json", exclude_none=True) for ref in state.lineage]
    return {
        RUN_TAG: state.run_id,
        "kitchen.recipe": state.recipe or "",
        "kitchen.workflow": state.workflow or "",
        "kitchen.lineage": json.dumps(lineage, sort_keys=True),
    }


class MlflowSink:
    """Metrics, params, tags and artifacts of one MLflow run, on the tracking server
    ``MLFLOW_TRACKING_URI`` names."""

    def __init__(self, history: Any) -> None:
        for key, value in MLFLOW_HTTP.items():
            os.environ.setdefault(key, value)
        self.entities: Any = importlib.import_module("mlflow.entities")
        self.client: Any = importlib.import_module("mlflow.tracking").MlflowClient()
        state: RunState = history.state
        run_id = history.opened.get("mlflow") or self._find(state.run_id)
        if run_id is None:
            run_id = self.client.create_run(
                self._experiment(), run_name=state.run_id, tags=labels(state)
            ).info.run_id
        if history.opened.get("mlflow") != run_id and history.record is not None:
            history.record(
                ev.TrackerRunOpened(tracker="mlflow", tracker_run_id=run_id, attempt=state.attempt)
            )
        self.run_id: str = run_id
        self.where = f"{self.client.tracking_uri} run {run_id}"
        run = self.client.get_run(run_id)
        if not state.terminal and run.info.status != "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        params = {k: v[:PARAM_MAX] for k, v in flat(state.config).items()}
        fresh = [self.entities.Param(k, v) for k, v in params.items() if k not in run.data.params]
        for i in range(0, len(fresh), 100):  # MLflow takes 100 params a batch
            self.client.log_batch(run_id, params=fresh[i : i + 100])
        self.held = {
            (key, int(m.step))
            for key in run.data.metrics
            for m in self.client.get_metric_history(run_id, key)
        }

    def _experiment(self) -> str:
        given = os.environ.get("MLFLOW_EXPERIMENT_ID")
        if given:
            return given
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or PROJECT
        found = self.client.get_experiment_by_name(name)
        return str(found.experiment_id if found else self.client.create_experiment(name))

    def _find(self, kitchen_run: str) -> str | None:
        """The MLflow run an earlier attempt opened and a kill kept off the record."""
        found = self.client.search_runs(
            [self._experiment()], filter_string=f"tags.`{RUN_TAG}` = '{kitchen_run}'"
        )
        return str(found[0].info.run_id) if found else None

    def has(self, tag: str, step: int) -> bool:
        return (tag, step) in self.held

    def write(self, batch: list[tuple[str, int, float]]) -> None:
        now = int(time.time() * 1000)
        metrics = [self.entities.Metric(tag, value, now, step) for tag, step, value in batch]
        for i in range(0, len(metrics), 1000):  # MLflow takes 1000 metrics a batch
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])
        self.held.update((tag, step) for tag, step, _ in batch)

    def finish(self, state: RunState, files: Mapping[str, Path]) -> None:
        there = {a.path for a in self.client.list_artifacts(self.run_id)}
        for name, path in files.items():
            if name in there:
                continue
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path=name)
            else:
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, status=STATUS.get(state.status, "FINISHED"))

    def close(self) -> None:
        """Every call went out as it was made."""


def wandb_root(run_dir: Path) -> Path:
    """The folder W&B writes its ``wandb/`` folder in: ``WANDB_DIR``, or the run's folder."""
    return Path(os.environ.get("WANDB_DIR") or run_dir)


def wandb_files(root: Path, run_id: str) -> list[Path]:
    """The transaction logs of every W&B run folder of ``run_id`` (one an attempt)."""
    return sorted(root.glob(f"wandb/*run-*-{run_id}/run-{run_id}.wandb"))


def wandb_records(path: Path) -> Iterator[bytes]:
    """The records of a W&B transaction log (a ``:W&B`` header, then records in 32 KiB
    blocks, as LevelDB's log lays them out), up to the first one a kill cut short."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        return
    block, pos, parts = 32768, 7, []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        if kind not in (1, 2, 3, 4) or len(chunk) < length:
            return
        pos += 7 + length
        if kind == 1:  # full
            yield chunk
        elif kind == 2:  # first
            parts = [chunk]
        elif kind == 3:  # middle
            parts.append(chunk)
        else:  # last
            yield b"".join([*parts, chunk])
            parts = []


def wandb_rows(root: Path, run_id: str) -> list[dict[str, Any]]:
    """Every history row the run's W&B files hold, in the order they were written."""
    pb: Any = importlib.import_module("wandb.proto.wandb_internal_pb2")
    rows = []
    for path in wandb_files(root, run_id):
        for data in wandb_records(path):
            record = pb.Record()
            record.ParseFromString(data)
            if record.WhichOneof("record_type") == "history":
                rows.append(
                    {
                        item.key or "/".join(item.nested_key): json.loads(item.value_json)
                        for item in record.history.item
                    }
                )
    return rows


STEP_KEY = "optimizer_step"


def wandb_points(root: Path, run_id: str) -> list[tuple[str, int, float]]:
    """The (tag, optimizer step, value) points the run's W&B files hold."""
    return [
        (key, int(row[STEP_KEY]), float(value))
        for row in wandb_rows(root, run_id)
        if STEP_KEY in row
        for key, value in row.items()
        if key.startswith(("train/", "eval/"))
    ]


class WandbSink:
    """Metrics (against ``optimizer_step``), config, tags and artifacts of the W&B run whose
    id is kitchen's run id, resumed by every attempt."""

    def __init__(self, history: Any) -> None:
        self.wandb: Any = importlib.import_module("wandb")
        state: RunState = history.state
        self.root = wandb_root(history.run_dir)
        self.held = {(tag, step) for tag, step, _ in wandb_points(self.root, state.run_id)}
        tags = labels(state)
        self.run: Any = self.wandb.init(
            id=state.run_id,
            name=state.run_id,
            resume="allow",
            project=os.environ.get("WANDB_PROJECT") or PROJECT,
            dir=str(self.root),
            config={**state.config, "kitchen": {k: tags[k] for k in sorted(tags)}},
            tags=[t for t in (state.recipe, state.workflow) if t],
            settings=self.wandb.Settings(console="off", silent=True),
            reinit="create_new",  # a server feeds several models' runs at once
        )
        self.open = True
        self.where = f"W&B run {state.run_id} ({self.run.settings.mode}, {self.root / 'wandb'})"
        self.run.define_metric(STEP_KEY)
        for kind in ("train", "eval"):
            self.run.define_metric(f"{kind}/*", step_metric=STEP_KEY)

    def has(self, tag: str, step: int) -> bool:
        return (tag, step) in self.held

    def write(self, batch: list[tuple[str, int, float]]) -> None:
        rows: dict[int, dict[str, float]] = {}
        for tag, step, value in batch:
            rows.setdefault(step, {})[tag] = value
        for step in sorted(rows):
            self.run.log({STEP_KEY: step, **rows[step]})
        self.held.update((tag, step) for tag, step, _ in batch)

    def finish(self, state: RunState, files: Mapping[str, Path]) -> None:
        kinds = {"final": "model", "config.json": "config"}
        for name, path in files.items():
            artifact = self.wandb.Artifact(
                f"{state.run_id}-{name.replace('.', '-')}", type=kinds.get(name, name)
            )
            if path.is_dir():
                artifact.add_dir(str(path))
            else:
                artifact.add_file(str(path))
            self.run.log_artifact(artifact)
        self.run.finish(exit_code=0 if state.status == "completed" else 1)
        self.open = False

    def close(self) -> None:
        if self.open:
            self.run.finish()
            self.open = False
