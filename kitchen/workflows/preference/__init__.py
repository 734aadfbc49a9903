"""The preference (DPO) workflow: pairs, a frozen reference, and the DPO loss, as one machine.

    load_dataset → init_tokenizer → build_preference_dataset → compute_reference_logprobs
    → init_session → [evaluate@start]
    epoch loop:  set_epoch → batch loop → log_epoch_metrics
    batch loop:  get_batch → forward_backward → optim_step → await_future → log_step_metrics
                 → [save_checkpoint every save_every] → [evaluate every eval_every]
    teardown:    [save_checkpoint@end] → save_final_weights → evaluate@end → cleanup

The skeleton is the one every built-in training workflow shares
(``kitchen.workflows.common.builder``). The reference log-probabilities are computed *before*
the policy is opened, from the weights the run started with, and stored as a hashed blob: a
resume reads them back instead of asking a policy that has since trained (the defect of
tinker-cookbook's resume). The five set-up stages run again when a run resumes; the reference
stage then only verifies its blob.

This module is light (no torch): the stage code is imported only when a run starts.
"""

from __future__ import annotations

from kitchen.spec import Rows
from kitchen.workflows.common.builder import BATCH_STEP, training_workflow
from kitchen.workflows.preference.data import COLUMNS, check_pair_row

WORKFLOW = training_workflow(
    "preference",
    "Direct preference optimisation (DPO) of a LoRA against its starting weights.",
    setup=(
        "load_dataset",
        "init_tokenizer",
        "build_preference_dataset",
        "compute_reference_logprobs",
        "init_session",
    ),
    step=BATCH_STEP,
    epochs=True,
    epoch_means={"dpo_loss": "epoch_mean_dpo_loss", "accuracy": "epoch_mean_accuracy"},
    stages="preference.stages",
    code={"init_tokenizer": "preference.stages.init_tokenizer"},  # before the policy exists
    fork_keys=("dpo_beta",),
    fork_artifacts=("reference_logprobs",),  # the parent's reference, never the fork point's
    progress_metrics=("dpo_loss", "accuracy", "learning_rate"),
    summary_metrics=("test/accuracy", "test/policy_prefers_chosen", "test/dpo_loss"),
    rows=Rows(columns=COLUMNS, check=check_pair_row),
    resources="preference.resources.PreferenceResources",
)
