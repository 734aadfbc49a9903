"""The supervised fine-tuning workflow: crucible_kitchen's fifteen stages as one state machine.

    load_dataset → init_session → init_tokenizer → build_supervised_dataset → [evaluate@start]
    epoch loop:  set_epoch → batch loop → log_epoch_metrics
    batch loop:  get_batch → forward_backward → optim_step → await_future → log_step_metrics
                 → [save_checkpoint every save_every] → [evaluate every eval_every]
    teardown:    [save_checkpoint@end] → save_final_weights → evaluate@end → cleanup

The skeleton (evaluate@start, the step's checkpoint and evaluation, the epoch loop's own
stages, the teardown) is the one every built-in training workflow shares
(``kitchen.workflows.common.builder``); this module names the set-up stages, the stages of one
step and the package of its own stage code. Training stops at ``max_steps`` or at the end of
``num_epochs``, whichever comes first. The per-step stages are ``hot``: they share one group
commit per step. The four set-up stages are re-run (as events of the new attempt) when a run
resumes from a checkpoint.

This module is light (no torch): the stage code is imported only when a run starts.
"""

from __future__ import annotations

from kitchen.spec import Rows
from kitchen.workflows.common.builder import BATCH_STEP, training_workflow
from kitchen.workflows.supervised.data import check_chat_row

WORKFLOW = training_workflow(
    "supervised",
    "Supervised LoRA fine-tuning on chat data (cross-entropy on chosen tokens).",
    setup=("load_dataset", "init_session", "init_tokenizer", "build_supervised_dataset"),
    step=BATCH_STEP,
    epochs=True,
    epoch_means={"train_mean_nll": "epoch_mean_nll"},
    stages="supervised.stages",
    progress_metrics=("train_mean_nll", "learning_rate", "tokens_per_s"),
    summary_metrics=("test/nll", "test/accuracy"),
    rows=Rows(columns=("messages",), check=check_chat_row),
    resources="supervised.resources.SupervisedResources",
)
