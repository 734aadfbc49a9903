"""What a resume decides before it runs anything: whether to continue, and from where.

- **Identity**: the config, data and library versions compared with what the run was created
  with; a changed config, dataset or parent/teacher weights is refused unless forced, other
  differences are only recorded.
- **Checkpoint choice**: the newest live checkpoint that still verifies (a local blob by its
  sha256, a remote reference by asking its service), and the newer ones that did not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kitchen import events as ev
from kitchen.errors import ConfigError
from kitchen.ports import BlobRef, BlobStore, ServiceClient
from kitchen.stage_api import ResumePoint
from kitchen.state import Checkpoint, RunState
from kitchen.workflow import INITIAL


@dataclass(frozen=True)
class Identity:
    """What a resume compares with RunCreated: a difference is recorded, some are refused.

    ``created_config_hash`` is the hash of the run's recorded config rebuilt by today's recipe
    (keys added since take their defaults), so only a change the user asked for counts as a
    changed config; ``lineage_changes`` are parent/teacher weights found changed (accepted
    only with ``--force``).
    """

    config_hash: str
    data_fingerprint: str | None
    versions: Mapping[str, str]
    torch_threads: int | None
    created_config_hash: str | None = None
    lineage_changes: tuple[str, ...] = ()


def compare(s: RunState, identity: Identity) -> tuple[list[str], list[str]]:
    """(every difference, as one line each; what of it is refused without --force)."""
    diffs: list[str] = []
    refused: list[str] = []
    created = identity.created_config_hash or s.config_hash
    if identity.config_hash != created:
        diffs.append(f"config_hash {s.config_hash} -> {identity.config_hash}")
        refused.append("config")
    if identity.lineage_changes:
        diffs.extend(identity.lineage_changes)
        refused.append("lineage weights")
    if identity.data_fingerprint != s.data_fingerprint:
        diffs.append(f"data_fingerprint {s.data_fingerprint} -> {identity.data_fingerprint}")
        refused.append("dataset")
    for lib, version in sorted(identity.versions.items()):
        if s.versions.get(lib) != version:
            diffs.append(f"{lib} {s.versions.get(lib)} -> {version}")
    created_threads = s.versions.get("torch_threads")
    if identity.torch_threads is not None and created_threads not in (
        None,
        str(identity.torch_threads),
    ):
        diffs.append(f"torch_threads {created_threads} -> {identity.torch_threads}")
    return diffs, refused


def refusal(run_id: str, refused: list[str]) -> ConfigError:
    return ConfigError(
        f"run {run_id!r} was created with a different {' and '.join(refused)}; "
        "resume with --force to continue anyway"
    )


def newest_valid_checkpoint(
    s: RunState, blobs: BlobStore, training: ServiceClient
) -> tuple[Checkpoint | None, list[Checkpoint]]:
    """The newest live checkpoint that verifies, and the newer ones that did not."""
    bad: list[Checkpoint] = []
    for ckpt in reversed(s.live_checkpoints()):
        if ckpt.location == "remote":
            ok = training.verify_checkpoint(ckpt.uri, ckpt.sha256)
        else:
            ok = blobs.verify(BlobRef(ckpt.uri, ckpt.sha256, ckpt.bytes))
        if ok:
            return ckpt, bad
        bad.append(ckpt)
    return None, bad


def resume_point(ckpt: Checkpoint | None, blobs: BlobStore) -> ResumePoint | None:
    if ckpt is None:
        return None
    return ResumePoint(ckpt, blobs.local_path(ckpt.uri) if ckpt.location == "local" else None)


def invalidated(bad: list[Checkpoint]) -> list[ev.CheckpointInvalidated]:
    return [
        ev.CheckpointInvalidated(
            checkpoint_seq=b.seq, uri=b.uri, reason="blob missing or sha256 mismatch"
        )
        for b in bad
    ]


def resumed(
    attempt: int,
    ckpt: Checkpoint | None,
    identity: Identity,
    differences: list[str],
    forced: bool,
) -> ev.RunResumed:
    return ev.RunResumed(
        attempt=attempt,
        from_checkpoint_seq=ckpt.seq if ckpt else None,
        from_step=ckpt.step if ckpt else 0,
        machine_state=ckpt.machine_state if ckpt else INITIAL,
        cursor=dict(ckpt.cursor) if ckpt else {},
        config_hash=identity.config_hash,
        data_fingerprint=identity.data_fingerprint,
        versions=dict(identity.versions),
        torch_threads=identity.torch_threads,
        differences=differences,
        forced=forced,
    )


def previous_span(s: RunState) -> tuple[str, str] | None:
    """The newest earlier attempt's span, which the new attempt's span links to."""
    for a in reversed(s.attempts):
        if a.trace_id and a.span_id:
            return a.trace_id, a.span_id
    return None
