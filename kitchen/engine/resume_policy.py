"""What a resume decides before it runs anything: whether to continue, and from where.

- **Identity**: the config's identity keys, data and library versions compared with what the
  run was created with; a changed identity key, dataset or parent/teacher weights is refused
  unless forced, other differences (library versions, operating settings) are only recorded.
- **Checkpoint choice**: the newest live checkpoint that still verifies (a local blob by its
  sha256, a remote reference by asking its service), and the newer ones that did not.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Mapping
from dataclasses import dataclass

from kitchen.engine import events as ev
from kitchen.engine.state import Attempt, Checkpoint, RunState
from kitchen.errors import BlobStoreUnavailable, ConfigError
from kitchen.ports import BlobRef, BlobStore, ServiceClient
from kitchen.spec import INITIAL
from kitchen.stage_api import ResumePoint


@dataclass(frozen=True)
class Identity:
    """What a resume compares with RunCreated: a difference is recorded, some are refused.

    ``config_hash``/``created_config_hash`` hash the identity keys of this attempt's config and
    of the run's recorded config rebuilt by today's recipe (keys added since take the value
    that reproduces the run), so only a change the user asked for counts as a changed config;
    ``operating_changes`` are this attempt's operating settings that differ from the last
    attempt's (recorded, never refused); ``lineage_changes`` are parent/teacher weights found
    changed (accepted only with ``--force``).
    """

    config_hash: str
    data_fingerprint: str | None
    versions: Mapping[str, str]
    torch_threads: int | None
    created_config_hash: str | None = None
    lineage_changes: tuple[str, ...] = ()
    operating_changes: tuple[str, ...] = ()


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
    diffs.extend(f"operating {change}" for change in identity.operating_changes)
    before = last_backend(s).get("torch_threads")
    if identity.torch_threads is not None and before not in (None, str(identity.torch_threads)):
        diffs.append(f"torch_threads {before} -> {identity.torch_threads}")
    return diffs, refused


def last_backend(s: RunState) -> Mapping[str, str]:
    """How the backend of the newest attempt that said so described itself."""
    for a in reversed(s.attempts):
        if a.backend:
            return a.backend
    return {}


def last_operating(s: RunState) -> dict[str, object] | None:
    """The operating settings of the newest attempt that recorded them (None: none did)."""
    for a in reversed(s.attempts):
        if a.operating is not None:
            return dict(a.operating)
    return None


# A step re-executed after an operating setting that moves floats changed (micro-batch size,
# world size, torch threads, device) is compared with this relative tolerance instead of the
# byte-for-byte absolute one: summing in another order changes the last bits, and a few
# optimizer steps from the same checkpoint carry that to about 1e-6..1e-5 of a loss.
# docs/guarantees.md states it.
CHANGED_SETTING_RTOL = 1e-4
BACKEND_KEYS_THAT_MOVE_FLOATS = ("device", "torch_threads", "world_size")


def attempt_at(s: RunState, seq: int) -> Attempt | None:
    """The attempt that recorded the event at ``seq``."""
    found = None
    for a in s.attempts:
        if a.started_seq <= seq:
            found = a
    return found


def float_moving_changes(
    s: RunState, logged_seq: int, keys: frozenset[str] | set[str]
) -> list[str]:
    """The float-moving settings that differ between the attempt that logged ``logged_seq``
    and the current one: config keys (``keys``) and the backend's device and threads.

    An attempt recorded before attempts recorded their operating settings ran with those of
    the run's ``RunCreated`` config."""
    then, now = attempt_at(s, logged_seq), (s.attempts[-1] if s.attempts else None)
    if then is None or now is None or then is now:
        return []
    before = s.config if then.operating is None else then.operating
    after = s.config if now.operating is None else now.operating
    out = [
        f"{k} {before.get(k)} -> {after.get(k)}"
        for k in sorted(keys)
        if before.get(k) != after.get(k)
    ]
    for k in BACKEND_KEYS_THAT_MOVE_FLOATS:
        old, new = _backend(then, k), _backend(now, k)
        if old is not None and new is not None and old != new:
            out.append(f"{k} {old} -> {new}")
    return out


def _backend(a: Attempt, key: str) -> str | None:
    """An attempt's backend value; an attempt on one process records no ``world_size``."""
    value = a.backend.get(key)
    return "1" if value is None and key == "world_size" else value


def attempt_changes(s: RunState) -> list[tuple[int, list[str]]]:
    """Per attempt after the first: its operating settings and backend that differ from the
    attempt before it (``key old -> new``, JSON values). An attempt recorded before attempts
    recorded their settings is compared with the run's ``RunCreated`` config."""
    out: list[tuple[int, list[str]]] = []
    for prev, cur in zip(s.attempts, s.attempts[1:], strict=False):
        if cur.operating is None:
            continue
        before = s.config if prev.operating is None else prev.operating
        lines = [
            f"{k} {json.dumps(before.get(k))} -> {json.dumps(v)}"
            for k, v in sorted(cur.operating.items())
            if k in before and before.get(k) != v
        ]
        for k in sorted((set(prev.backend) & set(cur.backend)) | {"world_size"}):
            old, new = _backend(prev, k), _backend(cur, k)
            if old != new:
                lines.append(f"backend {k} {old} -> {new}")
        if lines:
            out.append((cur.number, lines))
    return out


def refusal(run_id: str, refused: list[str]) -> ConfigError:
    return ConfigError(
        f"run {run_id!r} was created with a different {' and '.join(refused)}; "
        "resume with --force to continue anyway"
    )


def newest_valid_checkpoint(
    s: RunState, blobs: BlobStore, training: ServiceClient
) -> tuple[Checkpoint | None, list[Checkpoint]]:
    """The newest live checkpoint that verifies, and the newer ones that did not.

    A blob store that cannot be reached raises ``BlobStoreUnavailable`` (a fault: exit 75)
    before anything is judged, and so does an I/O error while hashing a blob: only a blob that
    is missing from a reachable store, or whose sha256 differs, is invalidated.
    """
    bad: list[Checkpoint] = []
    live = s.live_checkpoints()
    if any(c.location == "local" for c in live):
        check = getattr(blobs, "check_reachable", None)
        if check is not None:
            check(f"{s.run_dir or s.run_id}/")
    for ckpt in reversed(live):
        if ckpt.location == "remote":
            ok = training.verify_checkpoint(ckpt.uri, ckpt.sha256)
        else:
            ok = _verify_local(blobs, ckpt)
        if ok:
            return ckpt, bad
        bad.append(ckpt)
    return None, bad


def _verify_local(blobs: BlobStore, ckpt: Checkpoint) -> bool:
    try:
        return blobs.verify(BlobRef(ckpt.uri, ckpt.sha256, ckpt.bytes))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False  # removed while we looked: missing, like any missing blob
        raise BlobStoreUnavailable(
            f"cannot read checkpoint {ckpt.uri}: {exc.strerror or exc}; "
            "resume once its storage reads again"
        ) from exc


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
