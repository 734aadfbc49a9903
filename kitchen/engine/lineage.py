"""Lineage: the weights a run starts from (``parent``) or is taught by (``teacher``).

A source is one of:

- ``run:<run-id>`` — that run's final adapter (the run must be completed);
- ``run:<run-id>@<checkpoint>`` — one of its live checkpoints, by name (``step-000020``) or
  step (``20``); weights only, the new run's optimizer starts afresh;
- a folder — a ``save_state`` folder or a PEFT adapter folder, hashed as it is now;
- anything else — a base model (embedded name, model folder or hub id), loaded as the base.

What was taken and its sha256 go into ``RunCreated.lineage``; every resume hashes the weights
again and refuses to continue on changed ones unless ``--force`` is given.
"""

from __future__ import annotations

from pathlib import Path

from kitchen.engine.events import LineageRef
from kitchen.engine.state import RunState
from kitchen.errors import ConfigError, NotFound
from kitchen.paths import state_folder
from kitchen.ports import BlobRef


def resolve(role: str, source: str, home: Path) -> tuple[LineageRef, str]:
    """The record of ``source`` and the local path (or model name) to load it from."""
    if source.startswith("run:"):
        return _from_run(role, source, home)
    folder = Path(source).expanduser()
    if folder.is_dir():
        from kitchen.adapters.blobs import LocalBlobStore

        weights = (folder / "adapter_config.json").is_file() or (folder / "state.json").is_file()
        sha256, size = LocalBlobStore.hash_path(folder)
        ref = LineageRef(
            role=role,
            source=source,
            kind="folder" if weights else "base_model",
            uri=str(folder.resolve()),
            sha256=sha256,
            bytes=size,
        )
        return ref, str(folder.resolve())
    shipped = _embedded_folder(source)
    if shipped is not None:
        from kitchen.adapters.blobs import LocalBlobStore

        sha256, size = LocalBlobStore.hash_path(shipped)
        ref = LineageRef(role=role, source=source, kind="base_model", sha256=sha256, bytes=size)
        return ref, source
    return LineageRef(role=role, source=source, kind="base_model"), source


def _embedded_folder(name: str) -> Path | None:
    """The shipped folder of an embedded model name (``kitchen/tiny``), else None: its files
    are hashed like any folder's, but recorded by name, so a moved install still finds them."""
    from kitchen.embedded import resolve_model

    path = Path(resolve_model(name))
    return path if path.is_dir() and str(path) != name else None


def local_path(ref: LineageRef, home: Path) -> str:
    """Where a recorded lineage entry's weights are now (a resume loads them again)."""
    if ref.kind == "run":
        path = _run_blob(ref, home)
        return str(state_folder(path) if ref.what != "final" else path)
    return ref.uri or ref.source


def _run_blob(ref: LineageRef, home: Path) -> Path:
    """A run's blob on this machine: under KITCHEN_HOME, or else fetched from the blob store
    that run recorded (a bucket: downloaded into the cache and checked there)."""
    from kitchen.engine.registry import run_blob_store

    assert ref.uri is not None
    path = home / ref.uri
    if path.exists() or ref.run_id is None:
        return path
    try:
        state = _fold(ref.run_id, ref.source)
        if not {k for k in state.blob_store if k != "adapter"}:
            return path  # the run's blobs are under KITCHEN_HOME: missing is missing
        return Path(run_blob_store(state.config, state.blob_store, home).local_path(ref.uri))
    except NotFound:
        return path


def changed(ref: LineageRef, home: Path) -> str | None:
    """Why ``ref``'s weights are no longer what was recorded, or None if they still are."""
    if ref.sha256 is None:
        return None
    from kitchen.adapters.blobs import LocalBlobStore

    if ref.uri is not None:
        path = _run_blob(ref, home) if ref.kind == "run" else Path(ref.uri)
    else:
        shipped = _embedded_folder(ref.source)
        if shipped is None:
            return None
        path = shipped
    if not path.exists():
        return f"{ref.role} weights {ref.source!r} are missing ({path})"
    found, size = LocalBlobStore.hash_path(path)
    if found != ref.sha256 or size != ref.bytes:
        return (
            f"{ref.role} weights {ref.source!r} changed since the run was created "
            f"(sha256 {ref.sha256[:12]} recorded, {found[:12]} found)"
        )
    return None


def step_of(pick: str) -> int | None:
    """The step an ``@<checkpoint>`` names: ``20`` or ``step-000020`` (None: neither)."""
    text = pick.removeprefix("step-")
    return int(text) if text.isdigit() else None


def _from_run(role: str, source: str, home: Path) -> tuple[LineageRef, str]:
    from kitchen.engine.registry import run_blob_store

    run_id, _, pick = source[len("run:") :].partition("@")
    state = _fold(run_id, source)
    if pick:
        ckpt = next(
            (c for c in reversed(state.live_checkpoints()) if pick in (c.name, str(c.step))),
            None,
        )
        if ckpt is None:
            names = ", ".join(c.name for c in state.live_checkpoints()) or "none"
            raise ConfigError(
                f"{role} {source!r}: run {run_id!r} has no live checkpoint {pick!r} "
                f"(live: {names}); see `kitchen show {run_id}`"
            )
        if ckpt.location != "local":
            raise ConfigError(f"{role} {source!r}: checkpoint {ckpt.name} is remote ({ckpt.uri})")
        uri, sha256, size, what = ckpt.uri, ckpt.sha256, ckpt.bytes, ckpt.name
        step: int | None = ckpt.step
    else:
        final = state.latest_artifact("final_weights")
        if state.status != "completed" or final is None:
            raise ConfigError(
                f"{role} {source!r}: run {run_id!r} is {state.status}, with no final adapter; "
                f"name one of its checkpoints instead (run:{run_id}@<step>)"
            )
        uri, sha256, size, what, step = final.uri, final.sha256, final.bytes, "final", final.step
    blobs = run_blob_store(state.config, state.blob_store, home)
    if not blobs.verify(BlobRef(uri, sha256, size)):
        raise ConfigError(
            f"{role} {source!r}: {uri} under KITCHEN_HOME={home} is missing or fails its "
            f"sha256; check with `kitchen replay {run_id} --verify`"
        )
    ref = LineageRef(
        role=role,
        source=source,
        kind="run",
        run_id=run_id,
        what=what,
        uri=uri,
        step=step,
        sha256=sha256,
        bytes=size,
    )
    folder = Path(blobs.local_path(uri))
    return ref, str(state_folder(folder) if what != "final" else folder)


def _fold(run_id: str, source: str) -> RunState:
    from kitchen.engine import events as ev
    from kitchen.engine.state import Recorded, fold
    from kitchen.store import open_store

    with open_store() as store:
        rows = store.read(run_id)
        if not rows:
            raise NotFound(
                f"{source!r}: no run {run_id!r} in {store.url_for_display}; see `kitchen runs`"
            )
        recs = [
            Recorded(r.seq, r.recorded_at, ev.decode(r.type, r.schema_version, r.payload))
            for r in rows
        ]
    return fold(run_id, recs)


def fork_lines(s: RunState) -> list[str]:
    """How ``kitchen show`` describes where a fork starts."""
    f = s.fork
    if f is None:
        return []
    if f.checkpoint is not None:
        how = f"from its checkpoint {f.checkpoint}"
    else:
        how = f"re-executed from step {f.from_step} ({f.reexecuted} steps)"
    lines = [f"forked from {f.run_id} at step {f.step}, {how}; state sha256 {f.sha256[:12]}"]
    if f.overrides:
        lines.append("fork overrides: " + ", ".join(f"{k}={v}" for k, v in f.overrides.items()))
    for a in f.artifacts:
        lines.append(f"fork carries {a.kind} {a.uri} sha256 {a.sha256[:12]}")
    if f.mismatches:
        lines.append("fork forced past: " + "; ".join(f.mismatches))
    return lines
