"""save_final_weights: write the PEFT adapter folder ($KITCHEN_HOME/<run>/final) atomically,
and record it as the run's ``final_weights`` artifact."""

from __future__ import annotations

from pathlib import Path

from kitchen.engine import faults
from kitchen.paths import final_key
from kitchen.stage_api import Artifact, StageContext, StageResult
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.resources import TrainingResources


def run(ctx: StageContext[TrainingConfig, TrainingResources]) -> StageResult:
    r = ctx.resources

    def fill(tmp: Path) -> None:
        r.training.save_weights_for_sampler(tmp).result()
        faults.point("final:mid_write")

    ref = ctx.blobs.write_dir(final_key(ctx.run_id), fill)
    final = Artifact(
        kind="final_weights", uri=ref.uri, sha256=ref.sha256, bytes=ref.bytes, step=r.cursor.step
    )
    return StageResult(
        {"uri": ref.uri, "sha256": ref.sha256, "bytes": ref.bytes}, artifacts=(final,)
    )
