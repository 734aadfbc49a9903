"""The supervised fine-tuning workflow: crucible_kitchen's fifteen stages as one state machine.

    load_dataset → init_session → init_tokenizer → build_supervised_dataset → [evaluate@start]
    epoch loop:  set_epoch → batch loop → log_epoch_metrics
    batch loop:  get_batch → forward_backward → optim_step → await_future → log_step_metrics
                 → [save_checkpoint every save_every] → [evaluate every eval_every]
    teardown:    [save_checkpoint@end] → save_final_weights → evaluate@end → cleanup

Training stops at ``max_steps`` or at the end of ``num_epochs``, whichever comes first. The
per-step stages are ``hot``: they share one group commit per step. The four set-up stages are
re-run (as events of the new attempt) when a run resumes from a checkpoint.

The predicates read the data cursor that the stages keep in ``resources.cursor``; the same
functions tell ``await_future`` whether a checkpoint or evaluation follows the step it is
finishing, so it can drain the pipeline first (no later batch ever enters an earlier checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kitchen.workflow import Loop, Stage, Workflow

SETUP = (("setup", True),)


def steps_done(v: Any) -> int:
    return int(v.resources.cursor.step)


def total_steps(v: Any) -> int:
    return int(v.resources.plan.total_steps)


def save_due(v: Any) -> bool:
    n, every = steps_done(v), int(v.config.save_every)
    return every > 0 and n % every == 0 and n < total_steps(v)


def eval_due(v: Any) -> bool:
    n, every = steps_done(v), int(v.config.eval_every)
    return every > 0 and n % every == 0 and n < total_steps(v)


def more_batches(v: Any) -> bool:
    c = v.resources.cursor
    return c.batch_index < v.resources.plan.batches_per_epoch and c.step < total_steps(v)


def more_epochs(v: Any) -> bool:
    c = v.resources.cursor
    return c.epoch + 1 < int(v.config.num_epochs) and c.step < total_steps(v)


def final_checkpoint_due(v: Any) -> bool:
    live = v.state.live_checkpoints()
    return not live or live[-1].step != steps_done(v)


def eval_at_start(v: Any) -> bool:
    return steps_done(v) == 0


CONDITIONS: Mapping[str, Any] = {
    "save_due": save_due,
    "eval_due": eval_due,
    "more_batches": more_batches,
    "more_epochs": more_epochs,
    "final_checkpoint_due": final_checkpoint_due,
    "eval_at_start": eval_at_start,
}

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
)


def stages() -> dict[str, Any]:
    """Stage name → code. Imported lazily: the stage modules import the training stack."""
    from kitchen.stages import SUPERVISED, load

    return load(SUPERVISED)
