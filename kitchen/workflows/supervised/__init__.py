"""The supervised fine-tuning workflow: crucible_kitchen's fifteen stages as one state machine.

    load_dataset → init_session → init_tokenizer → build_supervised_dataset → [evaluate@start]
    epoch loop:  set_epoch → batch loop → log_epoch_metrics
    batch loop:  get_batch → forward_backward → optim_step → await_future → log_step_metrics
                 → [save_checkpoint every save_every] → [evaluate every eval_every]
    teardown:    [save_checkpoint@end] → save_final_weights → evaluate@end → cleanup

Training stops at ``max_steps`` or at the end of ``num_epochs``, whichever comes first. The
per-step stages are ``hot``: they share one group commit per step. The four set-up stages are
re-run (as events of the new attempt) when a run resumes from a checkpoint.

This module is light (no torch): the stage code is imported only when a run starts.
"""

from __future__ import annotations

from typing import Any

from kitchen.workflow import Loop, Rows, Stage, Workflow
from kitchen.workflows.common.loader import stage_loader
from kitchen.workflows.common.preflight import PARENT, check_training
from kitchen.workflows.supervised.conditions import CONDITIONS
from kitchen.workflows.supervised.data import check_chat_row

SETUP = (("setup", True),)

STAGES = {
    "load_dataset": "supervised.stages.load_dataset",
    "init_session": "common.init_session",
    "init_tokenizer": "common.init_tokenizer",
    "build_supervised_dataset": "supervised.stages.build_supervised_dataset",
    "set_epoch": "supervised.stages.set_epoch",
    "get_batch": "supervised.stages.get_batch",
    "forward_backward": "supervised.stages.forward_backward",
    "optim_step": "supervised.stages.optim_step",
    "await_future": "supervised.stages.await_future",
    "log_step_metrics": "supervised.stages.log_step_metrics",
    "log_epoch_metrics": "supervised.stages.log_epoch_metrics",
    "save_checkpoint": "common.save_checkpoint",
    "save_final_weights": "common.save_final_weights",
    "evaluate": "supervised.stages.evaluate",
    "cleanup": "common.cleanup",
}


stage_code = stage_loader(STAGES)


def new_resources() -> Any:
    from kitchen.workflows.supervised.resources import SupervisedResources

    return SupervisedResources()


WORKFLOW = Workflow(
    name="supervised",
    description="Supervised LoRA fine-tuning on chat data (cross-entropy on chosen tokens).",
    body=(
        Stage("load_dataset", options=SETUP),
        Stage("init_session", options=SETUP),
        Stage("init_tokenizer", options=SETUP),
        Stage("build_supervised_dataset", options=SETUP),
        Stage("evaluate", when="eval_at_start", qualifier="start"),
        Loop(
            "epoch",
            body=(
                Stage("set_epoch"),
                Loop(
                    "batch",
                    body=(
                        Stage("get_batch", hot=True),
                        Stage("forward_backward", hot=True),
                        Stage("optim_step", hot=True),
                        Stage("await_future", hot=True),
                        Stage("log_step_metrics", hot=True),
                        Stage("save_checkpoint", when="save_due"),
                        Stage("evaluate", when="eval_due"),
                    ),
                    again="more_batches",
                ),
                Stage("log_epoch_metrics"),
            ),
            again="more_epochs",
        ),
    ),
    teardown=(
        Stage("save_checkpoint", when="final_checkpoint_due", qualifier="end"),
        Stage("save_final_weights"),
        Stage("evaluate", qualifier="end"),
        Stage("cleanup"),
    ),
    conditions=CONDITIONS,
    step_metric="train_mean_nll",
    progress_metrics=("train_mean_nll", "learning_rate", "tokens_per_s"),
    summary_metrics=("test/nll", "test/accuracy"),
    rows=Rows(columns=("messages",), check=check_chat_row),
    lineage=PARENT,
    preflight=check_training,
    resources=new_resources,
    code=stage_code,
)
