"""The bakery: a workflow that lives only in kitchen's tests, installed as a plugin.

It is registered through entry-point metadata (``kitchen_bakery-0.1.dist-info``) on the
subprocess's PYTHONPATH, so the engine finds it exactly as it would find a third party's
workflow: no file under ``kitchen/`` or ``store/`` names it. Its stage names are its own, its
step fact comes from ``bake`` (an optimizer step), its determinism metric is ``crumb_loss``, and
its backend is a fake oven (``bakery.oven``) whose "weights" are a short list of floats.

    knead (set-up) → loop: proof → bake → taste → [shelve every save_every] → box → sweep
"""

from __future__ import annotations

import importlib
from typing import Any

from kitchen.spec import Loop, Stage, Workflow


def _more(v: Any) -> bool:
    return int(v.resources.next_step) < int(v.config.steps)


def _shelve_due(v: Any) -> bool:
    n, every = int(v.resources.next_step), int(v.config.save_every)
    return every > 0 and n % every == 0 and n < int(v.config.steps)


def _code() -> dict[str, Any]:
    stages = importlib.import_module("bakery.stages")
    names = ("knead", "proof", "bake", "taste", "shelve", "box", "sweep")
    return {name: getattr(stages, name) for name in names}


def _resources() -> Any:
    from bakery.stages import Bench

    return Bench()


WORKFLOW = Workflow(
    name="bakery",
    description="Bakes loaves on a fake oven (a test plugin).",
    body=(
        Stage("knead", options=(("setup", True),)),
        Loop(
            "loaf",
            body=(
                Stage("proof", hot=True),
                Stage("bake", hot=True),
                Stage("taste", hot=True),
                Stage("shelve", when="shelve_due"),
            ),
            again="more_loaves",
        ),
    ),
    teardown=(Stage("box"), Stage("sweep")),
    conditions={"more_loaves": _more, "shelve_due": _shelve_due},
    step_metric="crumb_loss",
    progress_metrics=("crumb_loss",),
    summary_metrics=("crumb_loss",),
    resources=_resources,
    code=_code,
)
