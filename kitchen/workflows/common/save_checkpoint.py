"""save_checkpoint: write everything bit-exact continuation needs, atomically, then record it.

The blob (training state: weights, optimizer, step, RNG states; plus the data cursor) is written
to a temp folder, fsynced and renamed into place by the BlobStore; only then does the stage hand
``CheckpointSaved`` to the runner, which commits the step's events first. A crash in between
leaves an orphan blob, never an event that points at nothing. Retention (``keep_checkpoints``)
deletes older blobs only after the new checkpoint's events are committed.

A remote backend saves its state in its own storage: ``save_state`` returns a reference
(``tinker://…``) and the checkpoint is recorded with ``location="remote"``; the cursor travels
in the event either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Literal

from kitchen.engine import faults, preemption
from kitchen.paths import checkpoint_key, checkpoint_name, state_folder
from kitchen.stage_api import (
    CheckpointDeleted,
    CheckpointSaved,
    StageContext,
    StageResult,
    View,
)
from kitchen.workflows.common.conditions import periodic_save_due
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.resources import TrainingResources

Ctx = StageContext[TrainingConfig, TrainingResources]


def run(ctx: Ctx) -> StageResult:
    r, cfg = ctx.resources, ctx.config
    if r.pipeline.inflight:  # await_future drains before a checkpoint; this guards the invariant
        raise RuntimeError(f"checkpoint with steps still in flight: {sorted(r.pipeline.inflight)}")
    c = r.cursor
    name = checkpoint_name(c.step)
    key = checkpoint_key(ctx.run_id, name)
    remote: list[str] = []
    # Taken because the attempt was preempted, at a step save_every would not have saved: a
    # peer may be gone already, so the processes' cross-check of their states is skipped.
    final = ctx.stage.qualifier == "end"
    preempted = ctx.interrupted() and not final and not periodic_save_due(View(ctx.state, cfg, r))

    def fill(tmp: Path) -> None:
        state_folder(tmp).mkdir()
        with preemption.saving() if preempted else contextlib.nullcontext():
            saved = r.training.save_state(state_folder(tmp)).result()
        if "://" in saved.path:
            remote.append(saved.path)
        faults.point("checkpoint:mid_write")
        (tmp / "cursor.json").write_text(json.dumps(c.as_dict(), sort_keys=True))

    ref = ctx.blobs.write_dir(key, fill)
    faults.point("checkpoint:after_blob")
    location: Literal["local", "remote"] = "local"
    uri, sha256, size = ref.uri, ref.sha256, ref.bytes
    if remote:
        uri, sha256, size, location = remote[0], _ref_hash(remote[0]), 0, "remote"
    saved = CheckpointSaved(
        name=name,
        step=c.step,
        epoch=max(c.epoch, 0),
        uri=uri,
        sha256=sha256,
        bytes=size,
        machine_state=ctx.stage.slot,
        cursor=c.as_dict(),
        final=final,
        location=location,
        preemption=preempted,
    )
    older = [k for k in ctx.state.live_checkpoints() if not k.final and k.uri != uri]
    drop = older[: max(0, len(older) - (cfg.keep_checkpoints - 1))]
    deleted = tuple(CheckpointDeleted(checkpoint_seq=k.seq, uri=k.uri, step=k.step) for k in drop)

    def delete_blobs() -> None:
        for k in drop:
            if k.location == "local" and ctx.blobs.exists(k.uri):
                ctx.blobs.delete(k.uri)

    return StageResult(
        {"name": name, "uri": uri, "bytes": size, "deleted": [k.name for k in drop]},
        events=(saved, *deleted),
        after_commit=(delete_blobs,),
    )


def _ref_hash(reference: str) -> str:
    """A remote state is identified by its reference; the service verifies what it holds."""
    return hashlib.sha256(reference.encode()).hexdigest()
