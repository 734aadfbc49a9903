"""save_checkpoint: the shared checkpoint stage, plus retention of rollout blobs.

Rollouts are only needed to re-execute steps after a checkpoint a resume could start from, so
once the checkpoint is committed, the rollouts of steps before the oldest checkpoint still
kept are deleted and recorded as ``ArtifactDeleted`` (``replay --verify`` then skips them).
Should every checkpoint later prove corrupt, a resume from the start samples those steps
again: the seeds make that sampling the same, only not free.
"""

from __future__ import annotations

from kitchen.stage_api import (
    ArtifactDeleted,
    ArtifactRecord,
    CheckpointDeleted,
    CheckpointSaved,
    StageResult,
)
from kitchen.workflows.common import save_checkpoint as common
from kitchen.workflows.rl.resources import Ctx
from kitchen.workflows.rl.stages.rollouts import KIND


def _expired(ctx: Ctx, result: StageResult) -> list[ArtifactRecord]:
    saved = [e for e in result.events if isinstance(e, CheckpointSaved)]
    dropped = {e.checkpoint_seq for e in result.events if isinstance(e, CheckpointDeleted)}
    kept = [k.step for k in ctx.state.live_checkpoints() if k.seq not in dropped]
    oldest = min([*kept, *(s.step for s in saved)])
    return [
        a
        for a in ctx.state.artifacts
        if a.kind == KIND and not a.deleted and a.step is not None and a.step < oldest
    ]


def run(ctx: Ctx) -> StageResult:
    result = common.run(ctx)
    expired = _expired(ctx, result)
    deleted = tuple(ArtifactDeleted(artifact_seq=a.seq, kind=a.kind, uri=a.uri) for a in expired)
    uris = sorted({a.uri for a in expired})

    def delete_rollouts() -> None:
        for uri in uris:
            if ctx.blobs.exists(uri):
                ctx.blobs.delete(uri)

    outputs = {**result.outputs, "rollouts_deleted": len(uris)}
    return StageResult(
        outputs,
        events=(*result.events, *deleted),
        after_commit=(*result.after_commit, delete_rollouts),
    )
