"""generate_teacher_outputs: the teacher's completions of the training prompts, once per run.

Greedy by default (``teacher_temperature=0``: one completion per prompt, decoded in batches);
with a temperature, ``teacher_samples`` completions per prompt, one seeded ``sample`` call per
prompt. The blob is written and recorded (``teacher_outputs``) before any training on it; a
resume verifies the blob on record and reads it back (re-recorded only when its record was
superseded), and only a missing or corrupt blob is generated again — the failed record then
gets an ``ArtifactDeleted``.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from kitchen.engine import faults
from kitchen.paths import artifact_key
from kitchen.stage_api import Artifact, ArtifactDeleted, ArtifactRecord, StageResult
from kitchen.types import SamplingParams
from kitchen.workflows.distillation import outputs
from kitchen.workflows.distillation.outputs import Completion
from kitchen.workflows.distillation.resources import OffPolicyCtx

CHUNK = 256


def prompt_seed(run_seed: int, row: int) -> int:
    digest = hashlib.sha256(f"kitchen.distill:{run_seed}:{row}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _generate(ctx: OffPolicyCtx) -> list[Completion]:
    cfg, r = ctx.config, ctx.resources
    obs = [r.renderer.build_generation_prompt(row["prompt"]) for row in r.train_rows]
    stop = tuple(r.renderer.get_stop_sequences())
    params = SamplingParams(
        max_tokens=cfg.max_tokens,
        temperature=cfg.teacher_temperature,
        stop=stop,  # type: ignore[arg-type]  # str or int tuple, as the renderer gives it
        seed=cfg.seed,
    )
    out: list[Completion] = []
    if cfg.teacher_temperature == 0.0:
        for start in range(0, len(obs), CHUNK):
            batch = r.teacher.sample_batch(obs[start : start + CHUNK], params).result()
            for i, resp in enumerate(batch, start):
                out.append(Completion(i, tuple(obs[i].to_ints()), tuple(resp.sequences[0].tokens)))
            faults.point("teacher_outputs:mid")
        return out
    futures = [
        r.teacher.sample(ob, cfg.teacher_samples, replace(params, seed=prompt_seed(cfg.seed, i)))
        for i, ob in enumerate(obs)
    ]
    for i, future in enumerate(futures):
        for seq in future.result().sequences:
            out.append(Completion(i, tuple(obs[i].to_ints()), tuple(seq.tokens)))
    return out


def _reuse(ctx: OffPolicyCtx, record: ArtifactRecord) -> StageResult | str:
    """The stage's result when the blob on record is sound, else why it is not."""
    if not ctx.blobs.verify(outputs.blob_ref(record)):
        return "blob missing or failed its sha256"
    completions = outputs.decode(ctx.blobs.read_bytes(record.uri))
    if any(c.row >= len(ctx.resources.train_rows) for c in completions):
        return "blob does not match the training prompts"
    ctx.resources.completions = completions
    again: tuple[Artifact, ...] = ()
    if ctx.state.is_superseded(record.seq):
        again = (
            Artifact(
                kind=outputs.KIND, uri=record.uri, sha256=record.sha256, bytes=record.bytes, step=0
            ),
        )
    out = {"generated": False, "uri": record.uri, "recorded_again": bool(again)}
    return StageResult(out, artifacts=again)


def run(ctx: OffPolicyCtx) -> StageResult:
    record = outputs.on_record(ctx.state)
    why = _reuse(ctx, record) if record is not None else "none on record"
    if isinstance(why, StageResult):
        return why
    completions = _generate(ctx)
    key = artifact_key(ctx.run_id, outputs.KIND, outputs.FILE)
    blob = ctx.blobs.write_bytes(key, outputs.encode(completions))
    faults.point("teacher_outputs:after_blob")
    ctx.resources.completions = completions
    out: dict[str, Any] = {
        "generated": True,
        "why": why,
        "completions": len(completions),
        "uri": blob.uri,
        "sha256": blob.sha256,
    }
    events: tuple[ArtifactDeleted, ...] = ()
    if record is not None:
        out["replaces_failed_seq"] = record.seq
        events = (ArtifactDeleted(artifact_seq=record.seq, kind=outputs.KIND, uri=record.uri),)
    artifact = Artifact(
        kind=outputs.KIND, uri=blob.uri, sha256=blob.sha256, bytes=blob.bytes, step=0
    )
    return StageResult(out, artifacts=(artifact,), events=events)
