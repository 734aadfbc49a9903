"""The shared training-workflow skeleton and the stages every built-in workflow shares.

The built-in workflows are built by ``training_workflow``; their tables are held to the golden
ones elsewhere (``kitchen recipes --graph``). Here: what the builder adds and refuses, and that
the shared stages give each workflow exactly the outputs its own copy gave.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kitchen.engine import registry
from kitchen.engine.builtins import BUILTIN
from kitchen.engine.state import RunState
from kitchen.spec import PREEMPTION_PENDING, Rows, Stage, Workflow
from kitchen.stage_api import Ports, StageContext
from kitchen.workflows.common import log_epoch_metrics, log_step_metrics, optim_step
from kitchen.workflows.common.builder import SHARED_CODE, training_workflow
from kitchen.workflows.common.conditions import CONDITIONS, STEP_CONDITIONS
from kitchen.workflows.common.inflight import submit
from kitchen.workflows.common.loop import Plan
from kitchen.workflows.common.preflight import PARENT, check_training
from kitchen.workflows.preference.config import PreferenceConfig
from kitchen.workflows.preference.resources import PreferenceResources
from kitchen.workflows.rl.config import RLConfig
from kitchen.workflows.rl.resources import RLResources
from kitchen.workflows.supervised.config import SupervisedConfig
from kitchen.workflows.supervised.resources import SupervisedResources


def _build(**changes: Any) -> Workflow:
    kwargs: dict[str, Any] = {
        "setup": ("load", "init_session"),
        "step": ("train", "optim_step", "log_step_metrics"),
        "stages": "toy.stages",
        "progress_metrics": ("loss", "learning_rate"),
        "summary_metrics": (),
        "rows": Rows(columns=("text",)),
        "resources": "supervised.resources.SupervisedResources",
        **changes,
    }
    return training_workflow("toy", "a toy", **kwargs)


def _builtins() -> list[Workflow]:
    found = [registry.lookup("workflows", name) for name in sorted(BUILTIN["workflows"])]
    assert all(isinstance(w, Workflow) for w in found)
    return found


def test_the_builder_adds_the_shared_skeleton() -> None:
    wf = _build()
    assert [s.slot for s in wf.stages()] == [
        "load",
        "init_session",
        "evaluate@start",
        "train",
        "optim_step",
        "log_step_metrics",
        "save_checkpoint",
        "evaluate",
        "save_checkpoint@end",
        "save_final_weights",
        "evaluate@end",
        "cleanup",
    ]
    assert [s.name for s in wf.stages() if s.setup] == ["load", "init_session"]
    assert {s.name for s in wf.stages() if s.hot} == {"train", "optim_step", "log_step_metrics"}
    # preemption_pending is the runner's to ask when an attempt is preempted, not a row's
    assert wf.compile().conditions() == set(STEP_CONDITIONS) - {PREEMPTION_PENDING}
    assert wf.conditions == STEP_CONDITIONS and wf.step_metric == "loss"
    assert wf.lineage == PARENT and wf.preflight is check_training
    assert isinstance(wf.resources(), SupervisedResources)  # imported when called


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "preference",
            {
                "get_batch": "preference.stages.get_batch",
                "init_tokenizer": "preference.stages.init_tokenizer",  # replaces the shared one
                "init_session": "common.init_session",
                "set_epoch": "common.set_epoch",
            },
        ),
        (
            "off_policy_distillation",
            {
                "init_teacher": "distillation.stages.init_teacher",
                "load_dataset": "rl.stages.load_dataset",
                "get_batch": "supervised.stages.get_batch",
                "log_epoch_metrics": "common.log_epoch_metrics",
            },
        ),
        ("rl", {"rollouts": "rl.stages.rollouts", "save_checkpoint": "rl.stages.save_checkpoint"}),
    ],
)
def test_own_stages_come_from_the_stages_package_the_shared_ones_from_common(
    name: str, expected: dict[str, str]
) -> None:
    wf = registry.lookup("workflows", name)
    assert isinstance(wf, Workflow) and wf.code is not None
    code = wf.code()
    assert {n: code[n].__module__ for n in expected} == {
        n: f"kitchen.workflows.{m}" for n, m in expected.items()
    }


def test_in_epochs_the_loop_has_its_own_stages_and_the_epoch_means() -> None:
    wf = _build(epochs=True, epoch_means={"loss": "epoch_mean_loss"})
    slots = [s.slot for s in wf.stages()]
    assert slots[3] == "set_epoch" and slots[9] == "log_epoch_metrics"
    assert wf.stage_at("log_epoch_metrics").option("means") == (("loss", "epoch_mean_loss"),)
    assert wf.compile().conditions() == set(CONDITIONS) - {PREEMPTION_PENDING}
    assert wf.conditions == CONDITIONS


def test_a_plugin_names_its_own_package() -> None:
    full = "kitchen.workflows.supervised.resources.SupervisedResources"
    assert isinstance(_build(package="", resources=full).resources(), SupervisedResources)
    wf = _build(package="kitchen", stages="workflows.rl.stages", code={"train": "x.train"})
    assert wf.code is not None
    with pytest.raises(ModuleNotFoundError, match=r"kitchen\.workflows\.rl\.stages\.load"):
        wf.code()  # the own stages are looked for under the package given


def test_the_builder_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match=r"code for stages it does not have \['bake'\]"):
        _build(code={"bake": "x.bake"})
    with pytest.raises(ValueError, match="epoch_means without epochs"):
        _build(epoch_means={"loss": "epoch_mean_loss"})


@pytest.mark.parametrize("wf", _builtins(), ids=lambda w: w.name)
def test_the_built_ins_mark_set_up_with_the_field(wf: Workflow) -> None:
    setup = [s for s in wf.stages() if s.setup]
    assert setup and all(s.options == () for s in setup)
    assert all(s.setup for s in wf.body[: len(setup)])  # type: ignore[union-attr]


def _ctx(config: Any, resources: Any, tmp_path: Path, stage: Stage) -> StageContext[Any, Any]:
    return StageContext(
        run_id="unit",
        attempt=1,
        config=config,
        resources=resources,
        state=RunState(run_id="unit"),
        stage=stage,
        home=tmp_path,
        run_dir=tmp_path,
        ports=Ports(training=None, datasets=None, blobs=None),  # type: ignore[arg-type]
        resume=None,
        interrupted=lambda: False,
        on_close=lambda fn: None,
    )


def _epoch_stage(name: str) -> Stage:
    wf = registry.lookup("workflows", name)
    assert isinstance(wf, Workflow)
    return wf.stage_at("log_epoch_metrics")


def test_log_epoch_metrics_keeps_each_workflows_output_keys(tmp_path: Path) -> None:
    sl = _ctx(SupervisedConfig(), SupervisedResources(), tmp_path, _epoch_stage("supervised"))
    sl.resources.cursor.epoch = 1
    sl.state.step_metrics.update(
        {
            3: {"epoch": 0, "train_mean_nll": 9.0},
            4: {"epoch": 1, "train_mean_nll": 2.0},
            5: {"epoch": 1, "train_mean_nll": 1.0},
        }
    )
    got = log_epoch_metrics.run(sl)
    assert (got.outputs, got.epoch) == ({"steps_logged": 2, "epoch_mean_nll": 1.5}, 1)

    dpo = _ctx(PreferenceConfig(), PreferenceResources(), tmp_path, _epoch_stage("preference"))
    dpo.resources.cursor.epoch = 0
    dpo.state.step_metrics.update(
        {0: {"epoch": 0, "dpo_loss": 0.5, "accuracy": 1.0}, 1: {"epoch": 0, "dpo_loss": 0.25}}
    )
    got = log_epoch_metrics.run(dpo)
    assert list(got.outputs.items()) == [
        ("steps_logged", 2),
        ("epoch_mean_dpo_loss", 0.375),
        ("epoch_mean_accuracy", 1.0),
    ]
    dpo.resources.cursor.epoch = 7
    assert log_epoch_metrics.run(dpo).outputs == {"steps_logged": 0}


class _Optimizer:
    def optim_step(self, params: Any) -> str:
        return "optim-future"


@pytest.mark.parametrize("kind", ["supervised", "rl"])
def test_optim_step_and_log_step_metrics_find_the_step_in_hand(kind: str, tmp_path: Path) -> None:
    if kind == "supervised":
        r: Any = SupervisedResources()
        r.batch = (3, [])
        cfg: Any = SupervisedConfig(learning_rate=1e-2, lr_schedule="constant")
    else:
        r = RLResources()
        r.batch.step = 3
        cfg = RLConfig(learning_rate=1e-2, lr_schedule="constant")
    r.plan = Plan(10, 1, 10, 10)
    r.training = _Optimizer()
    submit(r, 3, "fb-future", (1, 4, 2.0), 0.0)
    ctx = _ctx(cfg, r, tmp_path, Stage("optim_step"))
    got = optim_step.run(ctx)
    assert (got.step, got.optim_step, got.outputs) == (3, 3, {"learning_rate": 1e-2})
    assert r.pipeline.inflight[3].optim == "optim-future"
    r.pipeline.ready = {3: {"b": 2.0, "a": 1.0}}
    logged = log_step_metrics.run(ctx)
    assert (logged.step, logged.metrics, r.pipeline.ready) == (3, {3: {"b": 2.0, "a": 1.0}}, {})
    assert (tmp_path / "metrics.jsonl").read_text().startswith('{"step": 3, "attempt": 1, "b"')


def test_every_shared_stage_is_used_and_the_supervised_workflow_takes_them_all() -> None:
    assert set(SHARED_CODE) <= {s.name for wf in _builtins() for s in wf.stages()}
    sl = registry.lookup("workflows", "supervised")
    assert isinstance(sl, Workflow) and sl.code is not None
    code = sl.code()
    assert {n: code[n].__module__ for n in SHARED_CODE} == {
        n: f"kitchen.workflows.{target}" for n, target in SHARED_CODE.items()
    }
