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

This module is light (no torch): the stage code is imported only when a run starts.
"""

from __future__ import annotations

from typing import Any

from kitchen.workflow import Loop, Rows, Stage, Workflow
from kitchen.workflows.common.conditions import CONDITIONS as LOOP_CONDITIONS
from kitchen.workflows.common.loader import stage_loader
from kitchen.workflows.common.preflight import PARENT
from kitchen.workflows.distillation.teacher import check_teacher
from kitchen.workflows.rl.conditions import CONDITIONS as STEP_CONDITIONS
from kitchen.workflows.rl.data import check_prompt_row

SETUP = (("setup", True),)
LINEAGE = {**PARENT, "teacher": ("teacher_checkpoint", "teacher_model")}

_SHARED = {
    "init_session": "common.init_session",
    "init_tokenizer": "common.init_tokenizer",
    "init_teacher": "distillation.stages.init_teacher",
    "save_final_weights": "common.save_final_weights",
    "evaluate": "distillation.stages.evaluate",
    "cleanup": "common.cleanup",
}

ON_POLICY_STAGES = {
    **_SHARED,
    "load_dataset": "rl.stages.load_dataset",
    "build_env": "rl.stages.build_env",
    "rollouts": "rl.stages.rollouts",
    "compute_advantages": "distillation.stages.compute_advantages",
    "forward_backward": "rl.stages.forward_backward",
    "optim_step": "rl.stages.optim_step",
    "await_future": "rl.stages.await_future",
    "log_step_metrics": "rl.stages.log_step_metrics",
    "save_checkpoint": "rl.stages.save_checkpoint",
}

OFF_POLICY_STAGES = {
    **_SHARED,
    "load_dataset": "rl.stages.load_dataset",
    "generate_teacher_outputs": "distillation.stages.generate_teacher_outputs",
    "build_distillation_dataset": "distillation.stages.build_distillation_dataset",
    "set_epoch": "supervised.stages.set_epoch",
    "get_batch": "supervised.stages.get_batch",
    "forward_backward": "supervised.stages.forward_backward",
    "optim_step": "supervised.stages.optim_step",
    "await_future": "supervised.stages.await_future",
    "log_step_metrics": "supervised.stages.log_step_metrics",
    "log_epoch_metrics": "supervised.stages.log_epoch_metrics",
    "save_checkpoint": "common.save_checkpoint",
}


def _on_policy_resources() -> Any:
    from kitchen.workflows.distillation.resources import OnPolicyResources

    return OnPolicyResources()


def _off_policy_resources() -> Any:
    from kitchen.workflows.distillation.resources import OffPolicyResources

    return OffPolicyResources()


TEARDOWN = (
    Stage("save_checkpoint", when="final_checkpoint_due", qualifier="end"),
    Stage("save_final_weights"),
    Stage("evaluate", qualifier="end"),
    Stage("cleanup"),
)

ON_POLICY = Workflow(
    name="on_policy_distillation",
    description="On-policy distillation: reverse KL to a frozen teacher on the student's samples.",
    body=(
        Stage("load_dataset", options=SETUP),
        Stage("init_session", options=SETUP),
        Stage("init_tokenizer", options=SETUP),
        Stage("init_teacher", options=SETUP),
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
    teardown=TEARDOWN,
    conditions=STEP_CONDITIONS,
    step_metric="optim/loss",
    progress_metrics=("optim/loss", "teacher_kl", "env/all/correct"),
    summary_metrics=("test/accuracy", "test/format"),
    rows=Rows(columns=("prompt",), check=check_prompt_row),
    lineage=LINEAGE,
    preflight=check_teacher,
    resources=_on_policy_resources,
    code=stage_loader(ON_POLICY_STAGES),
)

OFF_POLICY = Workflow(
    name="off_policy_distillation",
    description="Off-policy distillation: supervised training on a frozen teacher's completions.",
    body=(
        Stage("load_dataset", options=SETUP),
        Stage("init_session", options=SETUP),
        Stage("init_tokenizer", options=SETUP),
        Stage("init_teacher", options=SETUP),
        Stage("generate_teacher_outputs", options=SETUP),
        Stage("build_distillation_dataset", options=SETUP),
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
    teardown=TEARDOWN,
    conditions=LOOP_CONDITIONS,
    step_metric="train_mean_nll",
    progress_metrics=("train_mean_nll", "learning_rate", "tokens_per_s"),
    summary_metrics=("test/accuracy", "test/format"),
    rows=Rows(columns=("prompt",), check=check_prompt_row),
    lineage=LINEAGE,
    preflight=check_teacher,
    resources=_off_policy_resources,
    code=stage_loader(OFF_POLICY_STAGES),
)
