"""save_final_weights: write the PEFT adapter folder ($KITCHEN_HOME/<run>/final) with its model
card (``README.md``, :mod:`kitchen.workflows.common.model_card`) atomically, and record it as the
run's ``final_weights`` artifact."""

from __future__ import annotations

from pathlib import Path

from kitchen import config as kconfig
from kitchen.engine import faults, registry
from kitchen.errors import NotFound
from kitchen.paths import final_key
from kitchen.stage_api import Artifact, StageContext, StageResult
from kitchen.workflows.common import model_card
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.resources import TrainingResources


def run(ctx: StageContext[TrainingConfig, TrainingResources]) -> StageResult:
    r = ctx.resources

    def fill(tmp: Path) -> None:
        r.training.save_weights_for_sampler(tmp).result()
        faults.point("final:mid_write")
        identity = kconfig.identity(type(ctx.config), ctx.state.config)
        model_card.write(tmp, ctx.state, identity, _headline(ctx.state.workflow))

    ref = ctx.blobs.write_dir(final_key(ctx.run_id), fill)
    final = Artifact(
        kind="final_weights", uri=ref.uri, sha256=ref.sha256, bytes=ref.bytes, step=r.cursor.step
    )
    return StageResult(
        {"uri": ref.uri, "sha256": ref.sha256, "bytes": ref.bytes}, artifacts=(final,)
    )


def _headline(workflow: str | None) -> tuple[str, ...]:
    """The workflow's progress metrics, the card's headline (none for one not registered)."""
    try:
        return tuple(registry.lookup("workflows", workflow).progress_metrics) if workflow else ()
    except NotFound:
        return ()
