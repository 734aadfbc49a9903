"""save_checkpoint: write everything bit-exact continuation needs, atomically, then record it.

The blob (training state: weights, optimizer, step, RNG states; plus the data cursor) is written
to a temp folder, fsynced and renamed into place by the BlobStore; only then does the stage hand
``CheckpointSaved`` to the runner, which commits the step's events first. A crash in between
leaves an orphan blob, never an event that points at nothing. Retention (``keep_checkpoints``)
deletes older blobs only after the new checkpoint's events are committed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kitchen import events as ev
from kitchen import faults
from kitchen.runner import StageResult


def run(ctx: Any) -> StageResult:
    r, cfg = ctx.resources, ctx.config
    if r.pipeline.inflight:  # await_future drains before a checkpoint; this guards the invariant
        raise RuntimeError(f"checkpoint with steps still in flight: {sorted(r.pipeline.inflight)}")
    c = r.cursor
    name = f"step-{c.step:06d}"
    key = f"{ctx.run_id}/checkpoints/{name}"

    def fill(tmp: Path) -> None:
        (tmp / "state").mkdir()
        r.training.save_state(tmp / "state").result()
        faults.point("checkpoint:mid_write")
        (tmp / "cursor.json").write_text(json.dumps(c.as_dict(), sort_keys=True))

    ref = ctx.blobs.write_dir(key, fill)
    faults.point("checkpoint:after_blob")
    final = ctx.stage.qualifier == "end"
    saved = ev.CheckpointSaved(
        name=name,
        step=c.step,
        epoch=max(c.epoch, 0),
        uri=ref.uri,
        sha256=ref.sha256,
        bytes=ref.bytes,
        machine_state=ctx.stage.slot,
        cursor=c.as_dict(),
        final=final,
    )
    older = [k for k in ctx.state.live_checkpoints() if not k.final and k.uri != ref.uri]
    drop = older[: max(0, len(older) - (cfg.keep_checkpoints - 1))]
    deleted = tuple(
        ev.CheckpointDeleted(checkpoint_seq=k.seq, uri=k.uri, step=k.step) for k in drop
    )

    def delete_blobs() -> None:
        for k in drop:
            if ctx.blobs.exists(k.uri):
                ctx.blobs.delete(k.uri)

    return StageResult(
        {"name": name, "uri": ref.uri, "bytes": ref.bytes, "deleted": [k.name for k in drop]},
        events=(saved, *deleted),
        after_commit=(delete_blobs,),
    )
