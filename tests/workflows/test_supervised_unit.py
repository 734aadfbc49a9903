"""The supervised workflow's table, predicates and stages, one at a time, without a model.

The stages get a real StageContext whose training client is a recording fake, so each test
is about one stage's bookkeeping: the cursor, the batch, the schedule, the metrics.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from kitchen.engine.state import RunState
from kitchen.spec import Stage
from kitchen.stage_api import Ports, StageContext, StageResult, View
from kitchen.types import AdamParams, Datum, ForwardBackwardOutput, ModelInput, TensorData
from kitchen.workflows.common import log_step_metrics, optim_step, set_epoch
from kitchen.workflows.common.loop import Cursor, Plan, epoch_order
from kitchen.workflows.supervised import WORKFLOW
from kitchen.workflows.supervised import conditions as c
from kitchen.workflows.supervised.config import SupervisedConfig
from kitchen.workflows.supervised.resources import SupervisedResources
from kitchen.workflows.supervised.stages import await_future, forward_backward, get_batch

GOLDEN = Path(__file__).parents[1] / "engine" / "golden" / "sl_basic_graph.txt"
KITCHEN = str(Path(sys.executable).with_name("kitchen"))


def _done(value: Any) -> Future[Any]:
    f: Future[Any] = Future()
    f.set_result(value)
    return f


class RecordingClient:
    """Answers at once; remembers what it was asked."""

    def __init__(self, loss_sum: float = 6.0) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.loss_sum = loss_sum

    def forward_backward(self, data: list[Datum], loss_fn: str = "cross_entropy") -> Future[Any]:
        self.calls.append(("forward_backward", len(data)))
        return _done(ForwardBackwardOutput((), {"loss:sum": self.loss_sum}))

    def optim_step(self, params: AdamParams) -> Future[Any]:
        self.calls.append(("optim_step", params))
        return _done(None)


def _datum(n: int) -> Datum:
    return Datum(
        ModelInput.from_ints(list(range(n))),
        {"weights": TensorData.from_list([1.0] * n, "float32")},
    )


def _resources(examples: int = 10, batch_size: int = 4, total: int = 5) -> SupervisedResources:
    r = SupervisedResources()
    r.data = [_datum(i + 2) for i in range(examples)]
    r.sizes = [(d.model_input.length, float(d.model_input.length)) for d in r.data]
    r.plan = Plan(examples, batch_size, examples // batch_size, total)
    r.training = RecordingClient()  # type: ignore[assignment]
    return r


def _ctx(
    r: SupervisedResources, tmp_path: Path, stage: str = "x", **config: Any
) -> StageContext[Any, Any]:
    cfg = SupervisedConfig(batch_size=r.plan.batch_size, **config)
    return StageContext(
        run_id="unit",
        attempt=1,
        config=cfg,
        resources=r,
        state=RunState(run_id="unit"),
        stage=Stage(stage),
        home=tmp_path,
        run_dir=tmp_path,
        ports=Ports(training=None, datasets=None, blobs=None),  # type: ignore[arg-type]
        resume=None,
        interrupted=lambda: False,
        on_close=lambda fn: None,
    )


def _view(r: SupervisedResources, **config: Any) -> View[Any, Any]:
    return View(RunState(run_id="unit"), SupervisedConfig(**config), r)


def test_the_graph_is_the_golden_one() -> None:
    r = subprocess.run(
        [KITCHEN, "recipes", "--graph", "sl_basic"], capture_output=True, text=True, check=True
    )
    assert r.stdout == GOLDEN.read_text(encoding="utf-8")


def test_the_workflow_declares_its_own_facts() -> None:
    assert WORKFLOW.step_metric == "train_mean_nll"
    assert WORKFLOW.rows is not None and WORKFLOW.rows.columns == ("messages",)
    assert [s.name for s in WORKFLOW.stages() if s.option("setup")] == [
        "load_dataset",
        "init_session",
        "init_tokenizer",
        "build_supervised_dataset",
    ]
    assert {s.name for s in WORKFLOW.stages() if s.hot} == {
        "get_batch",
        "forward_backward",
        "optim_step",
        "await_future",
        "log_step_metrics",
    }


@pytest.mark.parametrize(
    ("step", "save", "evaluate", "more"),
    [
        (2, True, False, True),
        (3, False, False, True),
        (4, True, True, True),
        (5, False, False, False),
    ],
)
def test_the_predicates_follow_the_cursor(
    step: int, save: bool, evaluate: bool, more: bool
) -> None:
    r = _resources(examples=20, batch_size=4, total=5)  # 5 batches an epoch, 5 steps
    r.cursor = Cursor(epoch=0, batch_index=step, step=step)
    v = _view(r, save_every=2, eval_every=4)
    # at the last step (5) neither fires: the teardown saves and evaluates then
    assert (c.save_due(v), c.eval_due(v), c.more_batches(v)) == (save, evaluate, more)
    assert not c.eval_at_start(v)


def test_more_epochs_stops_at_num_epochs_and_at_total_steps() -> None:
    r = _resources(examples=8, batch_size=4, total=6)
    r.cursor = Cursor(epoch=0, batch_index=2, step=2)
    assert c.more_epochs(_view(r, num_epochs=3))
    r.cursor = Cursor(epoch=2, batch_index=2, step=6)
    assert not c.more_epochs(_view(r, num_epochs=3))
    r.cursor = Cursor(epoch=1, batch_index=2, step=6)
    assert not c.more_epochs(_view(r, num_epochs=9))  # total_steps reached


def test_set_epoch_and_get_batch_walk_the_seeded_order(tmp_path: Path) -> None:
    r = _resources(examples=10, batch_size=4)
    ctx = _ctx(r, tmp_path, seed=5)
    assert set_epoch.run(ctx).epoch == 0
    order = epoch_order(10, 5, 0)
    got = get_batch.run(ctx)
    assert (got.step, r.cursor.as_dict()) == (0, {"epoch": 0, "batch_index": 1, "step": 1})
    assert r.batch[1] == [r.data[i] for i in order[:4]]
    tokens = sum(i + 2 for i in order[:4])  # datum i has i + 2 tokens, all weighted
    assert r.batch_stats == (4, tokens, float(tokens))
    get_batch.run(ctx)
    assert r.batch[0] == 1 and r.batch[1] == [r.data[i] for i in order[4:8]]


def test_one_step_submits_then_logs_the_mean_nll(tmp_path: Path) -> None:
    r = _resources(examples=8, batch_size=4, total=2)
    ctx = _ctx(r, tmp_path, learning_rate=1e-2, lr_schedule="linear", pipeline=False)
    set_epoch.run(ctx)
    get_batch.run(ctx)
    forward_backward.run(ctx)
    opt = optim_step.run(ctx)
    assert opt.optim_step == 0 and opt.outputs["learning_rate"] == pytest.approx(1e-2)
    awaited = await_future.run(ctx)
    assert awaited.outputs["awaited"] == [0]
    logged = log_step_metrics.run(ctx)
    assert isinstance(logged, StageResult)
    metrics = logged.metrics[0]
    tokens = r.batch_stats[2]
    assert metrics["train_mean_nll"] == pytest.approx(6.0 / tokens)  # loss:sum / loss tokens
    assert metrics["learning_rate"] == pytest.approx(1e-2)
    line = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert (line["step"], line["attempt"]) == (0, 1)
    # the second step of two: linear decay halves the rate
    get_batch.run(ctx)
    forward_backward.run(ctx)
    assert optim_step.run(ctx).outputs["learning_rate"] == pytest.approx(5e-3)


def test_await_future_keeps_the_current_step_in_flight_when_pipelining(tmp_path: Path) -> None:
    r = _resources(examples=16, batch_size=4, total=4)
    ctx = _ctx(r, tmp_path, learning_rate=1e-2, pipeline=True, save_every=0, eval_every=0)
    set_epoch.run(ctx)
    run: Callable[..., Any]
    for run in (get_batch.run, forward_backward.run, optim_step.run):
        run(ctx)
    assert await_future.run(ctx).outputs == {"awaited": [], "drained": False}
    for run in (get_batch.run, forward_backward.run, optim_step.run):
        run(ctx)
    assert await_future.run(ctx).outputs == {"awaited": [0], "drained": False}
    assert sorted(r.pipeline.inflight) == [1]
