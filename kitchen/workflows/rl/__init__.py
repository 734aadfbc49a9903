"""The RL workflow: group-relative policy gradient on verifiable rewards (tinker-cookbook's
``rl/train.py``), with rollouts on record.

    load_dataset → init_session → init_tokenizer → build_env → [evaluate@start]
    step loop:  rollouts → compute_advantages → forward_backward → optim_step → await_future
                → log_step_metrics → [save_checkpoint every save_every]
                → [evaluate every eval_every]
    teardown:   [save_checkpoint@end] → save_final_weights → evaluate@end → cleanup

The skeleton is the one every built-in training workflow shares
(``kitchen.workflows.common.builder``), as a plain step loop. ``rollouts`` is not ``hot``: its
blob is committed as an artifact before the step's gradient stages run, and a resume that
re-executes the step trains on that record instead of sampling again. The stages after it are
a pure function of the recorded rollouts and the checkpointed state, so a resumed run ends
with the same adapter, bit for bit. Each step drains before the next samples (on-policy), so
there is no submit-ahead.

This module is light (no torch): the stage code is imported only when a run starts.
"""

from __future__ import annotations

from kitchen.spec import Rows, Stage
from kitchen.workflows.common.builder import training_workflow
from kitchen.workflows.common.preflight import PARENT
from kitchen.workflows.rl.data import check_prompt_row

STEP = (
    Stage("rollouts"),
    "compute_advantages",
    "forward_backward",
    "optim_step",
    "await_future",
    "log_step_metrics",
)
"""One step on the policy's own samples (on-policy distillation takes it too)."""
FORK_KEYS = (
    "loss_fn",
    "temperature",
    "max_tokens",
    "format_coef",
    "advantages_by_std",
    "remove_constant_reward_groups",
    "loss_aggregation",
)
"""What a fork of an RL run may change besides the schedule: the loss and how the steps after
the fork point sample and reward (the problems each step sees stay the parent's)."""
ROWS = Rows(columns=("prompt",), check=check_prompt_row)

WORKFLOW = training_workflow(
    "rl",
    "Reinforcement learning with group-relative advantages on verifiable rewards.",
    setup=("load_dataset", "init_session", "init_tokenizer", "build_env"),
    step=STEP,
    stages="rl.stages",
    code={"save_checkpoint": "rl.stages.save_checkpoint"},  # the shared one + rollout retention
    progress_metrics=("optim/loss", "env/all/reward/total", "env/all/correct"),
    summary_metrics=("test/accuracy", "test/format"),
    rows=ROWS,
    resources="rl.resources.RLResources",
    fork_keys=FORK_KEYS,
    lineage={**PARENT, "judge": ("judge_checkpoint", "judge_model")},
)
