"""The RL workflow: group-relative policy gradient on verifiable rewards (tinker-cookbook's
``rl/train.py``), with rollouts on record.

    load_dataset → init_session → init_tokenizer → build_env → [evaluate@start]
    step loop:  rollouts → compute_advantages → forward_backward → optim_step → await_future
                → log_step_metrics → [save_checkpoint every save_every]
                → [evaluate every eval_every]
    teardown:   [save_checkpoint@end] → save_final_weights → evaluate@end → cleanup

``rollouts`` is not ``hot``: its blob is committed as an artifact before the step's gradient
stages run, and a resume that re-executes the step trains on that record instead of sampling
again. The stages after it are a pure function of the recorded rollouts and the checkpointed
state, so a resumed run ends with the same adapter, bit for bit. Each step drains before the
next samples (on-policy), so there is no submit-ahead.

This module is light (no torch): the stage code is imported only when a run starts.
"""

from __future__ import annotations

from typing import Any

from kitchen.workflow import Loop, Rows, Stage, Workflow
from kitchen.workflows.common.loader import stage_loader
from kitchen.workflows.common.preflight import PARENT, check_training
from kitchen.workflows.rl.conditions import CONDITIONS
from kitchen.workflows.rl.data import check_prompt_row

SETUP = (("setup", True),)

STAGES = {
    "load_dataset": "rl.stages.load_dataset",
    "init_session": "common.init_session",
    "init_tokenizer": "common.init_tokenizer",
    "build_env": "rl.stages.build_env",
    "rollouts": "rl.stages.rollouts",
    "compute_advantages": "rl.stages.compute_advantages",
    "forward_backward": "rl.stages.forward_backward",
    "optim_step": "rl.stages.optim_step",
    "await_future": "rl.stages.await_future",
    "log_step_metrics": "rl.stages.log_step_metrics",
    "save_checkpoint": "rl.stages.save_checkpoint",
    "save_final_weights": "common.save_final_weights",
    "evaluate": "rl.stages.evaluate",
    "cleanup": "common.cleanup",
}


stage_code = stage_loader(STAGES)


def new_resources() -> Any:
    from kitchen.workflows.rl.resources import RLResources

    return RLResources()


WORKFLOW = Workflow(
    name="rl",
    description="Reinforcement learning with group-relative advantages on verifiable rewards.",
    body=(
        Stage("load_dataset", options=SETUP),
        Stage("init_session", options=SETUP),
        Stage("init_tokenizer", options=SETUP),
        Stage("build_env", options=SETUP),
        Stage("evaluate", when="eval_at_start", qualifier="start"),
        Loop(
            "step",
            body=(
                Stage("rollouts"),
                Stage("compute_advantages", hot=True),
                Stage("forward_backward", hot=True),
                Stage("optim_step", hot=True),
                Stage("await_future", hot=True),
                Stage("log_step_metrics", hot=True),
                Stage("save_checkpoint", when="save_due"),
                Stage("evaluate", when="eval_due"),
            ),
            again="more_steps",
        ),
    ),
    teardown=(
        Stage("save_checkpoint", when="final_checkpoint_due", qualifier="end"),
        Stage("save_final_weights"),
        Stage("evaluate", qualifier="end"),
        Stage("cleanup"),
    ),
    conditions=CONDITIONS,
    step_metric="optim/loss",
    progress_metrics=("optim/loss", "env/all/reward/total", "env/all/correct"),
    summary_metrics=("test/accuracy", "test/format"),
    rows=Rows(columns=("prompt",), check=check_prompt_row),
    lineage=PARENT,
    preflight=check_training,
    resources=new_resources,
    code=stage_code,
)
