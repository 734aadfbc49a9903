"""rollouts: the step's trajectory groups, sampled once and on record before any gradient.

If a rollouts artifact of this step is already on record (an earlier attempt sampled it, even
one whose later events a resume superseded) and its blob verifies, the step trains on it and
the sampler does not run. Otherwise the groups are sampled on the current weights, one seeded
``sample`` call per group and turn (``kitchen.workflows.rl.rollout``; the steps of envs with
effects are activities, each on record before the next turn is sampled), written whole as a
blob, and recorded: the runner commits a stage's
artifacts at its end, before the next stage starts. Either way the artifact is (re-)recorded, so
the effective history holds one rollouts record per step, and training reads the decoded blob.
"""

from __future__ import annotations

import time

from kitchen.engine import faults
from kitchen.paths import artifact_key, step_file
from kitchen.ports import BlobRef
from kitchen.stage_api import Artifact, ArtifactRecord, StageResult
from kitchen.types import SamplingParams
from kitchen.workflows.rl import codec
from kitchen.workflows.rl.resources import Ctx, StepBatch
from kitchen.workflows.rl.rollout import Limits, sample_groups

KIND = "rollouts"


def recorded(ctx: Ctx, step: int) -> ArtifactRecord | None:
    """The newest record of this step's rollouts whose blob is intact."""
    for a in reversed(ctx.state.artifacts):
        mine = a.kind == KIND and a.step == step and not a.deleted and a.location == "local"
        if mine and ctx.blobs.verify(BlobRef(a.uri, a.sha256, a.bytes)):
            return a
    return None


def _sample(ctx: Ctx, step: int) -> Artifact:
    cfg, r = ctx.config, ctx.resources
    params = SamplingParams(max_tokens=cfg.max_tokens, temperature=cfg.temperature)
    sampler = r.training.sampling_client()
    try:
        batch = r.dataset.get_batch(step)
        groups = sample_groups(
            sampler, batch, params, cfg.seed, step, ctx.activities, Limits.of(cfg)
        )
    finally:
        sampler.close()
    ref = ctx.blobs.write_bytes(
        artifact_key(ctx.run_id, KIND, step_file(step, ".json")), codec.encode(step, groups)
    )
    faults.point("rollouts:after_blob")
    return Artifact(kind=KIND, uri=ref.uri, sha256=ref.sha256, bytes=ref.bytes, step=step)


def run(ctx: Ctx) -> StageResult:
    r = ctx.resources
    step = r.cursor.step
    t0 = time.perf_counter()
    found = recorded(ctx, step)
    if found is None:
        art = _sample(ctx, step)
    else:
        art = Artifact(kind=KIND, uri=found.uri, sha256=found.sha256, bytes=found.bytes, step=step)
    sampling_s = time.perf_counter() - t0
    _, groups = codec.decode(ctx.blobs.read_bytes(art.uri))
    tokens = sum(len(t.tokens) for g in groups for tr in g.trajectories for t in tr.transitions)
    r.batch = StepBatch(step=step, groups=groups)
    r.batch.metrics = {"time/rollouts_s": sampling_s}
    if found is None:
        r.batch.metrics["sampling_tokens_per_s"] = tokens / max(sampling_s, 1e-9)
    r.cursor.step += 1
    r.cursor.batch_index += 1
    out = {"sampled": found is None, "groups": len(groups), "sampled_tokens": tokens}
    return StageResult(out, step=step, artifacts=(art,))
