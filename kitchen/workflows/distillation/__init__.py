"""The distillation workflows: a student learns from a frozen teacher held beside it.

Both open the teacher through the factory port from the run's lineage (role ``teacher``:
``teacher_checkpoint=run:<id>`` or ``teacher_model=…``; its sha256 is in ``RunCreated`` and
every resume hashes it again), and both measure the teacher with the student's held-out
evaluator at the start.

**on_policy_distillation** — RL's machinery with the teacher as the reward:

    load_dataset → init_session → init_tokenizer → init_teacher → build_env → [evaluate@start]
    step loop:  rollouts → compute_advantages → forward_backward → optim_step → await_future
                → log_step_metrics → [save_checkpoint every save_every]
                → [evaluate every eval_every]
    teardown:   [save_checkpoint@end] → save_final_weights → evaluate@end → cleanup

``rollouts`` is RL's stage (the student's samples, a hashed blob on record before any
gradient); ``compute_advantages`` asks the teacher for the log-probs of the same tokens and
sets each token's advantage to ``−kl_penalty_coef · (log p_student − log p_teacher)``; the
gradient stages are RL's (``importance_sampling``).

**off_policy_distillation** — supervised training on the teacher's completions:

    load_dataset → init_session → init_tokenizer → init_teacher → generate_teacher_outputs
    → build_distillation_dataset → [evaluate@start]
    epoch loop:  set_epoch → batch loop → log_epoch_metrics
    batch loop:  get_batch → forward_backward → optim_step → await_future → log_step_metrics
                 → [save_checkpoint every save_every] → [evaluate every eval_every]
    teardown:    [save_checkpoint@end] → save_final_weights → evaluate@end → cleanup

``generate_teacher_outputs`` records the completions as one hashed blob before any training;
a resume reads it back. The loop is the supervised workflow's.

Both are built in the skeleton every built-in training workflow shares
(``kitchen.workflows.common.builder``).

This module is light (no torch): the stage code is imported only when a run starts.
"""

from __future__ import annotations

from typing import Any

from kitchen.workflows import rl
from kitchen.workflows.common.builder import BATCH_STEP, training_workflow
from kitchen.workflows.common.preflight import PARENT
from kitchen.workflows.distillation.teacher import check_teacher

LINEAGE = {**PARENT, "teacher": ("teacher_checkpoint", "teacher_model")}
BOTH: dict[str, Any] = {
    "summary_metrics": ("test/accuracy", "test/format"),
    "rows": rl.ROWS,
    "lineage": LINEAGE,
    "preflight": check_teacher,
}
"""What both declare alike: RL's held-out evaluation, its prompt rows, and the teacher (in the
lineage, and checked before the run exists)."""

ON_POLICY = training_workflow(
    "on_policy_distillation",
    "On-policy distillation: reverse KL to a frozen teacher on the student's samples.",
    setup=("load_dataset", "init_session", "init_tokenizer", "init_teacher", "build_env"),
    step=rl.STEP,
    stages="rl.stages",  # RL's, but for the teacher's stages and the reward
    code={
        "init_teacher": "distillation.stages.init_teacher",
        "compute_advantages": "distillation.stages.compute_advantages",
        "save_checkpoint": "rl.stages.save_checkpoint",
        "evaluate": "distillation.stages.evaluate",
    },
    progress_metrics=("optim/loss", "teacher_kl", "env/all/correct"),
    **BOTH,
    resources="distillation.resources.OnPolicyResources",
    fork_keys=(*rl.FORK_KEYS, "kl_penalty_coef"),
)

OFF_POLICY = training_workflow(
    "off_policy_distillation",
    "Off-policy distillation: supervised training on a frozen teacher's completions.",
    setup=(
        "load_dataset",
        "init_session",
        "init_tokenizer",
        "init_teacher",
        "generate_teacher_outputs",
        "build_distillation_dataset",
    ),
    step=BATCH_STEP,
    epochs=True,
    epoch_means={"train_mean_nll": "epoch_mean_nll"},
    stages="distillation.stages",  # the teacher's; the loop is the supervised workflow's
    code={
        "load_dataset": "rl.stages.load_dataset",
        **{s: f"supervised.stages.{s}" for s in ("get_batch", "forward_backward", "await_future")},
    },
    progress_metrics=("train_mean_nll", "learning_rate", "tokens_per_s"),
    **BOTH,
    resources="distillation.resources.OffPolicyResources",
    fork_artifacts=("teacher_outputs",),  # the teacher's completions, generated once
)
