"""compute_reference_logprobs: the frozen reference's sequence log-probabilities, once per run.

The reference is the policy the run *started* from, forever. On a resume the blob on record is
verified and read back (re-recorded only if its record was superseded, so the effective history
holds exactly one); it is never recomputed from resumed weights. Only a blob that is missing or
fails its hash is recomputed — from the starting weights, opened on a client of its own — and
the failed record is marked deleted, so the log says what happened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kitchen.engine import faults
from kitchen.paths import artifact_key
from kitchen.ports import TrainingClient
from kitchen.stage_api import Artifact, ArtifactDeleted, ArtifactRecord, StageResult
from kitchen.workflows.common.session import open_start
from kitchen.workflows.preference import reference as refs
from kitchen.workflows.preference.loss import sequence_logprobs
from kitchen.workflows.preference.resources import Ctx, Pair

if TYPE_CHECKING:  # pragma: no cover
    import torch

CHUNK_PAIRS = 64


def _logprobs(client: TrainingClient, pairs: list[Pair]) -> torch.Tensor:
    """[pairs, 2] sequence log-probabilities, a forward pass per chunk of pairs."""
    import torch

    rows = []
    for start in range(0, len(pairs), CHUNK_PAIRS):
        data = [d for pair in pairs[start : start + CHUNK_PAIRS] for d in pair]
        out = client.forward(data, "cross_entropy").result()
        lps = [o["logprobs"].to_torch() for o in out.loss_fn_outputs]
        rows.append(sequence_logprobs(data, lps).view(-1, 2))
        faults.point("reference:mid")
    return torch.cat(rows) if rows else torch.zeros((0, 2))


def _reuse(ctx: Ctx, record: ArtifactRecord) -> StageResult | str:
    """The stage's result when the blob on record is sound, else why it is not."""
    r = ctx.resources
    if not ctx.blobs.verify(refs.blob_ref(record)):
        return "blob missing or failed its sha256"
    ref = refs.decode(ctx.blobs.read_bytes(record.uri))
    if not ref.shape_matches(len(r.pairs), len(r.test_pairs)):
        return "blob does not match the rendered pairs"
    r.reference = ref
    again: tuple[Artifact, ...] = ()
    if ctx.state.is_superseded(record.seq):
        again = (
            Artifact(
                kind=refs.KIND, uri=record.uri, sha256=record.sha256, bytes=record.bytes, step=0
            ),
        )
    return StageResult(
        {"computed": False, "uri": record.uri, "recorded_again": bool(again)}, artifacts=again
    )


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    record = refs.on_record(ctx.state)
    why = _reuse(ctx, record) if record is not None else "none on record"
    if isinstance(why, StageResult):
        return why
    client = open_start(ctx)
    try:
        ref = refs.Reference(_logprobs(client, r.pairs), _logprobs(client, r.test_pairs))
    finally:
        client.close()
    key = artifact_key(ctx.run_id, refs.KIND, refs.FILE)
    blob = ctx.blobs.write_bytes(key, refs.encode(ref))
    faults.point("reference:after_blob")
    r.reference = ref
    out: dict[str, Any] = {"computed": True, "why": why, "uri": blob.uri, "sha256": blob.sha256}
    events: tuple[ArtifactDeleted, ...] = ()
    if record is not None:
        out["replaces_failed_seq"] = record.seq
        events = (ArtifactDeleted(artifact_seq=record.seq, kind=refs.KIND, uri=record.uri),)
    artifact = Artifact(kind=refs.KIND, uri=blob.uri, sha256=blob.sha256, bytes=blob.bytes, step=0)
    return StageResult(out, artifacts=(artifact,), events=events)
