"""The preference (DPO) workflow: pairs, a frozen reference, and the DPO loss, as one machine.

    load_dataset → init_tokenizer → build_preference_dataset → compute_reference_logprobs
    → init_session → [evaluate@start]
    epoch loop:  set_epoch → batch loop → log_epoch_metrics
    batch loop:  get_batch → forward_backward → optim_step → await_future → log_step_metrics
                 → [save_checkpoint every save_every] → [evaluate every eval_every]
    teardown:    [save_checkpoint@end] → save_final_weights → evaluate@end → cleanup

The reference log-probabilities are computed *before* the policy is opened, from the weights
the run started with, and stored as a hashed blob: a resume reads them back instead of asking
a policy that has since trained (the defect of tinker-cookbook's resume). The five set-up
stages run again when a run resumes; the reference stage then only verifies its blob.

This module is light (no torch): the stage code is imported only when a run starts.
"""

from __future__ import annotations

from typing import Any

from kitchen.workflow import Loop, Rows, Stage, Workflow
from kitchen.workflows.common.conditions import CONDITIONS
from kitchen.workflows.common.loader import stage_loader
from kitchen.workflows.common.preflight import PARENT, check_training
from kitchen.workflows.preference.data import COLUMNS, check_pair_row

SETUP = (("setup", True),)

STAGES = {
    "load_dataset": "preference.stages.load_dataset",
    "init_tokenizer": "preference.stages.init_tokenizer",
    "build_preference_dataset": "preference.stages.build_preference_dataset",
    "compute_reference_logprobs": "preference.stages.compute_reference_logprobs",
    "init_session": "preference.stages.init_session",
    "set_epoch": "preference.stages.set_epoch",
    "get_batch": "preference.stages.get_batch",
    "forward_backward": "preference.stages.forward_backward",
    "optim_step": "preference.stages.optim_step",
    "await_future": "preference.stages.await_future",
    "log_step_metrics": "preference.stages.log_step_metrics",
    "log_epoch_metrics": "preference.stages.log_epoch_metrics",
    "save_checkpoint": "common.save_checkpoint",
    "save_final_weights": "common.save_final_weights",
    "evaluate": "preference.stages.evaluate",
    "cleanup": "common.cleanup",
}


stage_code = stage_loader(STAGES)


def new_resources() -> Any:
    from kitchen.workflows.preference.resources import PreferenceResources

    return PreferenceResources()


WORKFLOW = Workflow(
    name="preference",
    description="Direct preference optimisation (DPO) of a LoRA against its starting weights.",
    body=(
        Stage("load_dataset", options=SETUP),
        Stage("init_tokenizer", options=SETUP),
        Stage("build_preference_dataset", options=SETUP),
        Stage("compute_reference_logprobs", options=SETUP),
        Stage("init_session", options=SETUP),
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
    step_metric="dpo_loss",
    progress_metrics=("dpo_loss", "accuracy", "learning_rate"),
    summary_metrics=("test/accuracy", "test/policy_prefers_chosen", "test/dpo_loss"),
    rows=Rows(columns=COLUMNS, check=check_pair_row),
    lineage=PARENT,
    preflight=check_training,
    resources=new_resources,
    code=stage_code,
)
