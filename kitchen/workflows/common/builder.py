"""The skeleton the built-in training workflows share, built around what is each one's own.

    set-up stages → [evaluate@start]
    in epochs:   epoch loop:  set_epoch → batch loop → log_epoch_metrics
                 batch loop:  <one step> → [save_checkpoint when save_due]
                              → [evaluate when eval_due]
    or in steps: step loop:   <one step> → [save_checkpoint when save_due]
                              → [evaluate when eval_due]
    teardown:    [save_checkpoint@end when final_checkpoint_due] → save_final_weights
                 → evaluate@end → cleanup

A workflow names its set-up stages and the stages of one step; the builder adds the rest, the
skeleton's conditions and the code of the stages every training workflow shares
(``SHARED_CODE``). The result is a plain :class:`kitchen.spec.Workflow`: the compiled
table, the machine states and the stage names are exactly those of the same workflow written
out by hand.

This module is light (no torch): stage code and resources are imported only when a run starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from kitchen.spec import Condition, Loop, Node, Rows, Stage, Workflow
from kitchen.workflows.common.conditions import CONDITIONS, STEP_CONDITIONS
from kitchen.workflows.common.loader import stage_loader
from kitchen.workflows.common.preflight import PARENT, check_training

SHARED_CODE: Mapping[str, str] = {
    "init_session": "common.init_session",
    "init_tokenizer": "common.init_tokenizer",
    "set_epoch": "common.set_epoch",
    "optim_step": "common.optim_step",
    "log_step_metrics": "common.log_step_metrics",
    "log_epoch_metrics": "common.log_epoch_metrics",
    "save_checkpoint": "common.save_checkpoint",
    "save_final_weights": "common.save_final_weights",
    "cleanup": "common.cleanup",
}
"""Stage name → module under ``kitchen.workflows``, for the stages a workflow need not map."""

FORK_KEYS = (
    "learning_rate",
    "lr_schedule",
    "max_steps",
    "save_every",
    "eval_every",
    "eval_examples",
    "eval_max_tokens",
)
"""The identity keys every training workflow lets a fork change: the optimizer's schedule for
the remaining steps, where training stops, and how often it checkpoints and evaluates. None of
them is part of the state at the fork point (the learning rate is computed from the config at
every step, the data order from the seed and the epoch)."""

BATCH_STEP = ("get_batch", "forward_backward", "optim_step", "await_future", "log_step_metrics")
"""One step of a loop over a fixed list of examples: take a batch, submit its forward/backward
and optimizer step, take the results (pipelined), log them."""


def training_workflow(
    name: str,
    description: str,
    *,
    setup: Sequence[str],
    step: Sequence[str | Stage],
    epochs: bool = False,
    epoch_means: Mapping[str, str] | None = None,
    stages: str,
    code: Mapping[str, str] | None = None,
    progress_metrics: tuple[str, ...],
    summary_metrics: tuple[str, ...],
    rows: Rows,
    resources: str | Callable[[], Any],
    step_metric: str | None = None,
    conditions: Mapping[str, Condition] | None = None,
    lineage: Mapping[str, tuple[str, ...]] = PARENT,
    preflight: Callable[[Any], None] = check_training,
    package: str = "kitchen.workflows",
    fork_keys: Sequence[str] = (),
    fork_artifacts: Sequence[str] = (),
) -> Workflow:
    """A training workflow in the shared skeleton.

    - ``setup``: the set-up stages in order (re-run when a run resumes from a checkpoint);
    - ``step``: the stages of one step, before its checkpoint and evaluation; a name is a
      ``hot`` stage (it shares its step's group commit), a :class:`Stage` is taken as given
      (RL's ``rollouts`` commits its record before the gradient stages run);
    - ``epochs``: steps grouped in epochs (an epoch loop of batches with ``set_epoch`` and
      ``log_epoch_metrics``; conditions ``more_epochs`` and ``more_batches``), or else a plain
      step loop (condition ``more_steps``);
    - ``epoch_means``: with ``epochs``, the step metrics ``log_epoch_metrics`` averages over
      an epoch: step metric → output key (besides ``steps_logged``);
    - ``stages``: the package of the workflow's own stages: stage ``x`` is the ``run`` of
      module ``<stages>.x``, unless it is a shared one;
    - ``code``: stage name → module, for a stage taken from elsewhere or one that replaces the
      shared stage of that name;
    - ``resources``: the resources' class as ``module.Class`` (imported when a run starts), or
      a function that makes them;
    - ``package``: what ``stages``, ``code`` and ``resources`` are named under (a plugin
      names its own package; empty: full module names);
    - ``step_metric`` defaults to the first of ``progress_metrics``, ``conditions`` to the
      skeleton's, ``lineage`` and ``preflight`` to those of a training run (the parent weights,
      the renderer); the rest is passed to :class:`Workflow` as it is;
    - ``fork_keys``: identity keys a fork may change besides ``FORK_KEYS``;
      ``fork_artifacts``: the run-wide artifact kinds a fork carries from its parent.
    """
    if epoch_means is not None and not epochs:
        raise ValueError(f"workflow {name!r}: epoch_means without epochs")
    prefix = f"{package}." if package else ""
    steps: tuple[Node, ...] = (
        *(Stage(s, hot=True) if isinstance(s, str) else s for s in step),
        Stage("save_checkpoint", when="save_due"),
        Stage("evaluate", when="eval_due"),
    )
    loop = Loop("step", body=steps, again="more_steps")
    if epochs:
        means = (("means", tuple((epoch_means or {}).items())),)
        loop = Loop(
            "epoch",
            body=(
                Stage("set_epoch"),
                Loop("batch", body=steps, again="more_batches"),
                Stage("log_epoch_metrics", options=means),
            ),
            again="more_epochs",
        )
    body: tuple[Node, ...] = (
        *(Stage(s, setup=True) for s in setup),
        Stage("evaluate", when="eval_at_start", qualifier="start"),
        loop,
    )
    teardown = (
        Stage("save_checkpoint", when="final_checkpoint_due", qualifier="end"),
        Stage("save_final_weights"),
        Stage("evaluate", qualifier="end"),
        Stage("cleanup"),
    )
    workflow = Workflow(
        name=name,
        description=description,
        body=body,
        teardown=teardown,
        conditions=conditions or (CONDITIONS if epochs else STEP_CONDITIONS),
        step_metric=step_metric or progress_metrics[0],
        progress_metrics=progress_metrics,
        summary_metrics=summary_metrics,
        rows=rows,
        lineage=lineage,
        preflight=preflight,
        resources=_lazy(prefix + resources) if isinstance(resources, str) else resources,
        fork_keys=(*FORK_KEYS, *fork_keys),
        fork_artifacts=tuple(fork_artifacts),
    )
    modules = _modules(workflow, prefix + stages, code or {}, prefix)
    return replace(workflow, code=stage_loader(modules, package=""))


def _modules(
    workflow: Workflow, stages: str, code: Mapping[str, str], prefix: str
) -> dict[str, str]:
    """Stage name → the full name of the module whose ``run`` is its code."""
    names = list(dict.fromkeys(s.name for s in workflow.stages()))
    unknown = sorted(set(code) - set(names))
    if unknown:
        raise ValueError(f"workflow {workflow.name!r}: code for stages it does not have {unknown}")

    def module(n: str) -> str:
        if n in code:
            return prefix + code[n]
        if n in SHARED_CODE:
            return f"kitchen.workflows.{SHARED_CODE[n]}"
        return f"{stages}.{n}"

    return {n: module(n) for n in names}


def _lazy(target: str) -> Callable[[], Any]:
    """Makes the resources of class ``module.Class``, importing the module only then."""
    module, _, cls = target.rpartition(".")

    def make() -> Any:
        return getattr(importlib.import_module(module), cls)()

    return make
