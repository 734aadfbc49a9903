"""``kitchen fork ID@STEP``: a new run that starts from another run's exact state at a step.

The state at optimizer step STEP is everything a checkpoint holds (weights, optimizer state,
RNG states, the data cursor; the schedule is computed from the step) plus the run-wide
artifacts the workflow declares (``Workflow.fork_artifacts``: DPO's reference, a teacher's
completions), which were computed from the parent's *starting* weights and so are carried,
never recomputed.

- **A checkpoint at STEP**: its folder is copied into the fork's folder.
- **None at STEP**: the parent's steps from its newest earlier checkpoint (or from its start)
  to STEP are re-executed in a scratch copy of the run — the parent's events and blobs in a
  temporary database and folder under ``KITCHEN_HOME``, the parent's config with a checkpoint
  due at STEP — on the parent's recorded data (RL's rollouts are read back, not sampled); the
  runner compares each re-executed step with the parent's log, and a difference refuses the
  fork unless ``--force`` (then ``ForkPoint.mismatches`` records it). The checkpoint written
  at STEP is copied into the fork's folder; the scratch copy is removed. Nothing of the
  parent is written.

Either way the fork's log opens with ``RunCreated`` (``fork``: parent, step, the state's
sha256, the overrides), the state as the fork's own first ``CheckpointSaved``, and its first
attempt resumed from it: a fork is then a run like any other (``kitchen resume``, ``replay``,
``export``, a fork of it). Every check runs before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitchen import config as kconfig
from kitchen.engine import events as ev
from kitchen.engine import launch
from kitchen.engine import lineage as klineage
from kitchen.engine import resume_policy as policy
from kitchen.engine.runner import EXIT_INTERRUPTED, Identity, Reporter
from kitchen.engine.state import ArtifactRecord, Checkpoint, Mismatch, Recorded, RunState, fold
from kitchen.errors import ConfigError, KitchenError, NotFound
from kitchen.paths import checkpoint_key
from kitchen.ports import BlobRef, EventLog

FINAL_SLOT_SUFFIX = "@end"
TERMINAL_EVENTS = ("RunCompleted", "RunFailed", "RunCancelled")


def parse_target(text: str) -> tuple[str, int | None]:
    """``ID@STEP``, ``ID@step-000020`` or ``ID`` (its newest checkpoint: None) — the grammar
    of a ``run:`` reference's ``@<checkpoint>``."""
    run_id, sep, pick = text.partition("@")
    if not run_id or (sep and not pick):
        raise ConfigError(f"fork target {text!r}: use ID@STEP, ID@step-000020 or ID")
    if not sep:
        return run_id, None
    step = klineage.step_of(pick)
    if step is None:
        raise ConfigError(
            f"fork target {text!r}: {pick!r} is not a step; use ID@STEP (e.g. {run_id}@20) or "
            f"ID@step-000020"
        )
    return run_id, step


@dataclass
class Plan:
    """What ``kitchen fork`` decided before it writes anything."""

    parent: RunState
    step: int
    at: Checkpoint | None  # the parent's checkpoint at ``step``, if it has one
    start: Checkpoint | None  # else the newest earlier one to re-execute from (None: start)
    overrides: dict[str, Any]  # identity keys changed: key -> new value
    prepared: launch.Prepared  # the fork's config, ports and identity
    carried: list[ArtifactRecord]  # the parent's artifacts the fork carries


def _fold(store: EventLog, run_id: str) -> RunState:
    rows = store.read(run_id)
    if not rows:
        raise NotFound(f"no run {run_id!r} in {store.url_for_display}; see `kitchen runs`")
    recs = [
        Recorded(r.seq, r.recorded_at, ev.decode(r.type, r.schema_version, r.payload)) for r in rows
    ]
    return fold(run_id, recs)


def done_steps(s: RunState) -> int:
    """How many optimizer steps the run has applied (its effective history)."""
    return max(len(s.optim_steps), max((c.step for c in s.live_checkpoints()), default=0))


def plan(
    store: EventLog,
    target: str,
    overrides: Sequence[str] | Mapping[str, Any],
    fork_id: str,
    home: Path,
) -> Plan:
    """Every check of ``kitchen fork`` (one line each, nothing written)."""
    from kitchen.recipes import load_recipe
    from kitchen.workflows import get_workflow

    run_id, step = parse_target(target)
    parent = _fold(store, run_id)
    if parent.recipe is None or parent.workflow is None:
        raise NotFound(f"run {run_id!r} has no RunCreated event")
    if parent.workflow == "served":
        raise ConfigError(
            f"run {run_id!r} is a model served by `kitchen serve`; forking a served model is "
            "not supported: fork a run of a recipe"
        )
    if store.run_exists(fork_id):
        raise ConfigError(f"run {fork_id!r} already exists; pass another --run-id")
    if str(parent.blob_store.get("adapter", "local")) != "local":
        raise ConfigError(
            f"run {run_id!r} keeps its blobs in the {parent.blob_store.get('adapter')!r} blob "
            "store; kitchen fork copies a state between local run folders only"
        )
    done = done_steps(parent)
    live = [c for c in parent.live_checkpoints() if c.location == "local"]
    if step is None:
        if not live:
            raise ConfigError(
                f"run {run_id!r} has no live checkpoint; fork it at a step: {run_id}@N"
            )
        step = live[-1].step
    if step <= 0:
        raise ConfigError(
            f"fork {run_id}@{step}: step 0 is the run's start; start a new run instead "
            f"(`kitchen run {parent.recipe} key=value …`)"
        )
    if step > done:
        raise ConfigError(
            f"fork {run_id}@{step}: run {run_id!r} has applied {done} optimizer steps; fork it "
            f"at a step from 1 to {done}"
        )
    workflow = get_workflow(parent.workflow)
    recipe = load_recipe(parent.recipe)
    asked = kconfig.parse_overrides(overrides)
    operating = kconfig.operating_keys(recipe.config)
    allowed = set(workflow.fork_keys)
    bad = sorted(k for k in asked if k not in allowed and k.partition(".")[0] not in operating)
    if bad:
        raise ConfigError(
            f"fork of {run_id}: {bad[0]!r} cannot change at a fork; a fork of a "
            f"{parent.workflow} run may change {', '.join(workflow.fork_keys)} and the "
            "operating settings"
        )
    max_steps = asked.get("max_steps")
    if isinstance(max_steps, int) and not isinstance(max_steps, bool) and max_steps <= step:
        raise ConfigError(
            f"fork {run_id}@{step}: max_steps={max_steps} ends before the fork point; give "
            f"max_steps above {step}"
        )
    changed = [why for ref in parent.lineage if (why := klineage.changed(ref, home)) is not None]
    if changed:
        raise ConfigError(f"fork of {run_id}: {changed[0]}; a fork keeps its parent's weights")
    before = policy.last_operating(parent)
    cfg = kconfig.restore(recipe.config, parent.config, asked, recipe.renamed, before)
    lineage = list(parent.lineage)
    paths = {ref.role: klineage.local_path(ref, home) for ref in lineage}
    prepared = launch.identify(recipe, cfg, lineage, paths)
    if prepared.data_fingerprint != parent.data_fingerprint:
        raise ConfigError(
            f"fork of {run_id}: its dataset changed since the run was created "
            f"(fingerprint {str(parent.data_fingerprint)[:12]} recorded, "
            f"{str(prepared.data_fingerprint)[:12]} found); a fork trains on its parent's data"
        )
    blobs = prepared.ports.blobs
    at = next((c for c in reversed(live) if c.step == step and _sound(blobs, c)), None)
    start = None
    if at is None:
        start = next((c for c in reversed(live) if c.step < step and _sound(blobs, c)), None)
    carried = [a for a in parent.effective_artifacts() if a.kind in workflow.fork_artifacts]
    for a in carried:
        if a.location != "local" or not blobs.verify(BlobRef(a.uri, a.sha256, a.bytes)):
            raise ConfigError(
                f"fork of {run_id}: its {a.kind} blob {a.uri} is missing or fails its sha256; "
                f"check with `kitchen replay {run_id} --verify`"
            )
    recorded = kconfig.redacted(cfg)
    identity_keys = set(kconfig.identity(recipe.config, recorded))
    changes = {k: recorded[k] for k in sorted(asked) if k in identity_keys}
    return Plan(parent, step, at, start, changes, prepared, carried)


def _sound(blobs: Any, c: Checkpoint) -> bool:
    return bool(blobs.verify(BlobRef(c.uri, c.sha256, c.bytes)))


# --------------------------------------------------------------------------- re-execution


@dataclass
class Reexecuted:
    folder: Path  # the checkpoint folder at the fork point, in the scratch copy
    saved: Checkpoint
    steps: int
    mismatches: list[Mismatch]


@contextlib.contextmanager
def scratch_home(home: Path) -> Iterator[Path]:
    """A folder beside the run folders (same filesystem: blobs are hard-linked), removed
    after."""
    home.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=".fork-", dir=home))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _link_tree(src: Path, dest: Path) -> None:
    """Blobs are never changed in place (written whole, renamed), so a hard link is a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    if src.is_dir():
        shutil.copytree(src, dest, copy_function=link)
    else:
        link(str(src), str(dest))


def reexecute(store: EventLog, p: Plan, home: Path, scratch: Path) -> Reexecuted:
    """Run the parent's steps from ``p.start`` (or its start) up to ``p.step`` in a scratch
    copy (events in a temporary SQLite database, blobs hard-linked under ``scratch``), with
    the parent's identity and a checkpoint due at the fork point, and stop there."""
    from kitchen.log_records import NewEvent
    from kitchen.recipes import load_recipe
    from kitchen.store import open_store

    parent, step = p.parent, p.step
    run_id = parent.run_id
    (scratch / (parent.run_dir or run_id)).mkdir(parents=True, exist_ok=True)
    if p.start is not None:
        _link_tree(home / p.start.uri, scratch / p.start.uri)
    for a in parent.artifacts:
        needed = a.kind != "final_weights" and (a.step is None or a.step < step)
        usable = not a.deleted and a.location == "local" and (home / a.uri).exists()
        if needed and usable and not (scratch / a.uri).exists():
            _link_tree(home / a.uri, scratch / a.uri)
    rows = store.read(run_id)
    end = next((i for i, r in enumerate(rows) if r.type in TERMINAL_EVENTS), len(rows))
    batch = [
        NewEvent(e.type_name(), e.payload(), e.schema_version)
        for e in (ev.decode(r.type, r.schema_version, r.payload) for r in rows[:end])
    ]
    recipe = load_recipe(str(parent.recipe))
    before = policy.last_operating(parent)
    operating = {  # the fork's operating settings; secrets come back from the environment
        k: v
        for k, v in kconfig.operating_of(recipe.config, p.prepared.record).items()
        if v != kconfig.REDACTED
    }
    cfg = kconfig.restore(
        recipe.config, parent.config, {**operating, "save_every": step}, recipe.renamed, before
    )
    lineage = list(parent.lineage)
    paths = {ref.role: klineage.local_path(ref, home) for ref in lineage}
    with open_store(f"sqlite:///{scratch / 'scratch.db'}") as copy:
        copy.append(run_id, batch, expected_seq=0)
        prepared = launch.identify(load_recipe(str(parent.recipe)), cfg, lineage, paths, scratch)
        runner = launch.make_runner(prepared, copy, run_id, Reporter())
        runner.stop_when = lambda s: any(
            c.step == step and c.attempt == s.attempt for c in s.live_checkpoints()
        )
        threads = prepared.ports.training.describe().get("torch_threads")
        identity = Identity(
            prepared.config_hash,
            prepared.data_fingerprint,
            launch.versions(),
            int(threads) if threads is not None else None,
        )
        try:
            code = runner.resume(identity, force=True)
        finally:
            if runner.telemetry is not None:
                runner.telemetry.shutdown()
        state = runner.state
    saved = next(
        (c for c in state.live_checkpoints() if c.step == step and c.attempt == state.attempt),
        None,
    )
    if code != EXIT_INTERRUPTED or saved is None:
        raise KitchenError(
            f"fork {run_id}@{step}: re-executing the run's steps up to {step} did not reach "
            f"the fork point (exit {code}); nothing was written"
        )
    first = p.start.step if p.start else 0
    mismatches = [m for m in state.mismatches if first <= m.step < step]
    return Reexecuted(scratch / saved.uri, saved, step - first, mismatches)


# --------------------------------------------------------------------------- the fork


def in_loop(machine_state: str) -> str:
    """A run's final checkpoint is taken in its teardown (``save_checkpoint@end``); a fork
    re-enters the loop's checkpoint slot instead, so that a larger ``max_steps`` trains on."""
    if machine_state.endswith(FINAL_SLOT_SUFFIX):
        return machine_state[: -len(FINAL_SLOT_SUFFIX)]
    return machine_state


def _copy_into(blobs: Any, key: str, src: Path) -> BlobRef:
    def fill(tmp: Path) -> None:
        for child in sorted(src.iterdir()):
            if child.name == ".kitchen-blob":
                continue
            if child.is_dir():
                shutil.copytree(child, tmp / child.name)
            else:
                shutil.copy2(child, tmp / child.name)

    ref: BlobRef = blobs.write_dir(key, fill)
    return ref


def carried_artifacts(p: Plan, fork_id: str, home: Path) -> list[ev.Artifact]:
    """The parent's run-wide artifacts, copied into the fork's folder under the same names."""
    blobs = p.prepared.ports.blobs
    out: list[ev.Artifact] = []
    prefix = f"{p.parent.run_dir or p.parent.run_id}/"
    for a in p.carried:
        if not a.uri.startswith(prefix):
            raise ConfigError(f"fork of {p.parent.run_id}: artifact {a.uri} is outside its folder")
        key = f"{fork_id}/{a.uri[len(prefix) :]}"
        ref = blobs.write_bytes(key, (home / a.uri).read_bytes())
        out.append(
            ev.Artifact(kind=a.kind, uri=ref.uri, sha256=ref.sha256, bytes=ref.bytes, step=a.step)
        )
    return out


def start(
    store: EventLog,
    p: Plan,
    fork_id: str,
    reporter: Reporter,
    *,
    force: bool = False,
    trace_console: bool = False,
) -> int:
    """Write the fork's starting state and run it."""
    from kitchen.engine import faults

    home, parent, step = p.prepared.home, p.parent, p.step
    blobs = p.prepared.ports.blobs
    with scratch_home(home) as scratch:
        if p.at is not None:
            source, ckpt, steps, mismatches = home / p.at.uri, p.at, 0, []
        else:
            done = reexecute(store, p, home, scratch)
            source, ckpt, steps, mismatches = done.folder, done.saved, done.steps, done.mismatches
        lines = [
            f"step {m.step}: {m.metric} {m.logged!r} logged, {m.replayed!r} re-executed"
            for m in mismatches
        ]
        if lines and not force:
            raise ConfigError(
                f"fork {parent.run_id}@{step}: re-executing the run's steps did not reproduce "
                f"its log ({lines[0]}); fork with --force to take the re-executed state anyway"
            )
        name = ckpt.name
        ref = _copy_into(blobs, checkpoint_key(fork_id, name), source)
    faults.point("fork:after_state")
    artifacts = carried_artifacts(p, fork_id, home)
    point = ev.ForkPoint(
        run_id=parent.run_id,
        step=step,
        checkpoint=p.at.name if p.at is not None else None,
        from_step=step if p.at is not None else (p.start.step if p.start else 0),
        reexecuted=steps,
        mismatches=lines,
        forced=bool(lines),
        sha256=ref.sha256,
        bytes=ref.bytes,
        overrides=p.overrides,
        artifacts=artifacts,
    )
    pr = p.prepared
    created = ev.RunCreated(
        recipe=pr.recipe.name,
        workflow=pr.recipe.workflow,
        config=pr.record,
        config_hash=pr.config_hash,
        seed=int(getattr(pr.config, "seed", 0)),
        versions=launch.versions(),
        data_fingerprint=pr.data_fingerprint,
        run_dir=fork_id,
        lineage=pr.lineage,
        blob_store=pr.blob_store,
        fork=point,
    )
    saved = ev.CheckpointSaved(
        name=name,
        step=ckpt.step,
        epoch=ckpt.epoch,
        uri=ref.uri,
        sha256=ref.sha256,
        bytes=ref.bytes,
        machine_state=in_loop(ckpt.machine_state),
        cursor=dict(ckpt.cursor),
        final=False,
        location="local",
    )
    runner = launch.make_runner(pr, store, fork_id, reporter, trace_console)
    threads = pr.ports.training.describe().get("torch_threads")
    identity = Identity(
        pr.config_hash,
        pr.data_fingerprint,
        launch.versions(),
        int(threads) if threads is not None else None,
    )
    try:
        return runner.fork(created, saved, identity)
    finally:
        if runner.telemetry is not None:
            runner.telemetry.shutdown()


__all__ = ["Plan", "done_steps", "parse_target", "plan", "start"]
