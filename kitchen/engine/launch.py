"""From a recipe name and settings to a running attempt: the checks, the identity, the runner.

``prepare`` does every check that needs no heavy work (recipe, keys, types, ranges, files, home
writable, database reachable, dataset rows in the workflow's shape, the lineage the workflow
declares, the workflow's pre-flight) before anything is written, so a refused run leaves nothing
behind. It also builds the run's ports, once, from the recipe's adapters manifest (overridable
with ``adapters.<port>=NAME``): launch is the only reader of the manifest, and each adapter's
factory reads and checks its own settings. Launch knows no training key.
``start``/``resume`` then build the Runner with the recipe's workflow.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from kitchen import config as kconfig
from kitchen import settings
from kitchen.engine import events as ev
from kitchen.engine import lineage as klineage
from kitchen.engine import registry, snapshots, trackers
from kitchen.engine import resume_policy as policy
from kitchen.engine.distributed import Follower, FollowerBlobs, Mirror, Setup
from kitchen.engine.io_faults import storage_fault
from kitchen.engine.runner import Identity, Reporter, Runner
from kitchen.engine.unit_of_work import window_from_env
from kitchen.errors import ConfigError, OutOfMemory
from kitchen.paths import RUN_ID_RULE, kitchen_home, valid_run_id
from kitchen.ports import Collectives, EventLog
from kitchen.spec import Recipe, Workflow
from kitchen.stage_api import Ports, Preflight

LIBRARIES = ("kitchen-posttrain", "torch", "transformers", "peft", "datasets", "tokenizers")


def check_home_writable(home: Path) -> None:
    probe = home / f".write-test-{os.getpid()}"
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        fault = storage_fault(exc, f"to KITCHEN_HOME={home}", then="try again")
        if fault is not None:  # full, read-only or failing: a fault to outwait, not a mistake
            raise fault from None
        raise ConfigError(
            f"KITCHEN_HOME={str(home)!r} is not writable ({exc.strerror or exc}); "
            "set KITCHEN_HOME to a folder you can write"
        ) from None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib.replace("kitchen-posttrain", "kitchen")] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


def new_run_id(recipe: str) -> str:
    return f"{recipe}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


PORTS = ("training", "datasets", "blobs")


@dataclass
class Prepared:
    recipe: Recipe
    workflow: Workflow
    config: Any
    record: dict[str, Any]
    config_hash: str
    data_fingerprint: str | None
    home: Path
    manifest: dict[str, str]
    ports: Ports
    lineage: list[ev.LineageRef]
    lineage_paths: dict[str, str]
    operating: dict[str, Any]
    blob_store: dict[str, Any]


def manifest_of(recipe: Recipe, cfg: Any) -> dict[str, str]:
    """The recipe's adapters manifest with the config's ``adapters.*`` overrides; names checked."""
    chosen = blobs_adapter_of_setting()
    manifest = {
        **recipe.adapters,
        **({kconfig.BLOBS: chosen} if chosen else {}),
        **dict(getattr(cfg, "adapters", {}) or {}),
    }
    unknown = sorted(set(manifest) - set(PORTS))
    if unknown:
        raise ConfigError(
            f"unknown port {unknown[0]!r} in adapters; the ports are {', '.join(PORTS)}"
        )
    defaults = {"datasets": "hf_datasets", "blobs": "local"}
    for port in PORTS:
        name = manifest.setdefault(port, defaults.get(port, ""))
        if name not in registry.names(port):
            raise ConfigError(
                f"unknown {port} adapter {name!r}; known: {', '.join(registry.names(port))}"
            )
    return manifest


def blobs_adapter_of_setting() -> str | None:
    """The blob store KITCHEN_BLOBS_URL names: ``fsspec`` for a URL (``s3://…``), ``local``
    for a folder, None when it is not set (the recipe's manifest decides: KITCHEN_HOME)."""
    url = settings.current().blobs_url
    if not url:
        return None
    return "fsspec" if "://" in url else "local"


def build_ports(
    manifest: dict[str, str],
    cfg: Any,
    home: Path,
    blob_location: dict[str, Any] | None = None,
    *,
    check_blobs: bool = False,
) -> Ports:
    """Each port's factory from the registry, called once with the config and the home; the
    blob store's with ``blob_location`` too when a run recorded one (a resume). The blob store
    comes first: with ``check_blobs`` (a new run) a store that cannot be used (a missing bucket,
    refused credentials) is refused before the heavier ports are built."""
    blobs = registry.build_blob_store(manifest[kconfig.BLOBS], cfg, home, blob_location)
    usable = getattr(blobs, "check_usable", None)
    if check_blobs and usable is not None:
        usable()
    made = {
        port: registry.lookup(port, manifest[port])(cfg, home)
        for port in PORTS
        if port != kconfig.BLOBS
    }
    return Ports(training=made["training"], datasets=made["datasets"], blobs=blobs)


def _dataset_identity(workflow: Workflow, cfg: Any, ports: Ports) -> str | None:
    """Read the training rows (so bad rows fail before the run) and fingerprint them."""
    rows = workflow.rows
    if rows is None:
        return None
    source = str(getattr(cfg, rows.source_key))
    data = ports.datasets.load(source, "train", columns=rows.columns)
    if rows.check is not None:
        for index, row in enumerate(data):
            rows.check(source, index, row)
    return str(ports.datasets.fingerprint(source, "train"))


def prepare(
    recipe_name: str,
    overrides: Sequence[str] | Mapping[str, Any],
    config_file: str | None,
    file_data: Mapping[str, Any] | None = None,
) -> Prepared:
    """Every check of a new run of ``recipe_name``: ``overrides`` (``key=value`` texts, or a
    mapping of values) beat the config file, or ``file_data`` read from one already."""
    from kitchen.recipes import load_recipe
    from kitchen.workflows import get_workflow

    recipe = load_recipe(recipe_name)
    data = dict(file_data or {})
    if config_file:
        data = {**kconfig.read_file(config_file), **data}
    cfg = kconfig.build(recipe.config, data, kconfig.parse_overrides(overrides))
    lineage, paths = _resolve_lineage(get_workflow(recipe.workflow), cfg, kitchen_home())
    return identify(recipe, cfg, lineage, paths)


def _resolve_lineage(
    workflow: Workflow, cfg: Any, home: Path
) -> tuple[list[ev.LineageRef], dict[str, str]]:
    """The weights of each lineage role the workflow declares (the first of its keys set)."""
    refs: list[ev.LineageRef] = []
    paths: dict[str, str] = {}
    for role, keys in workflow.lineage.items():
        source = next((v for k in keys if (v := getattr(cfg, k, None))), None)
        if source:
            ref, path = klineage.resolve(role, str(source), home)
            refs.append(ref)
            paths[role] = path
    return refs, paths


def identify(
    recipe: Recipe,
    cfg: Any,
    lineage: list[ev.LineageRef],
    paths: dict[str, str],
    home: Path | None = None,
    blob_location: dict[str, Any] | None = None,
    *,
    new_run: bool = True,
) -> Prepared:
    """The checks and the ports of a run of ``recipe`` with ``cfg`` (in ``home``, by default
    KITCHEN_HOME): what a start, a resume and a fork share. ``blob_location``: the blob
    store's place as the run recorded it (a resume without KITCHEN_BLOBS_URL). A new run's
    store is checked before anything is written (a resume's is checked once it is known to be
    the run's own)."""
    from kitchen.workflows import get_workflow

    workflow = get_workflow(recipe.workflow)
    home = kitchen_home() if home is None else home
    trackers.check_installed(getattr(cfg, "loggers", None) or [])
    check_home_writable(home)
    manifest = manifest_of(recipe, cfg)
    ports = build_ports(manifest, cfg, home, blob_location, check_blobs=new_run)
    if workflow.preflight is not None:
        roles = {ref.role: ref for ref in lineage}
        workflow.preflight(Preflight(cfg, ports, roles, paths))
    record = kconfig.redacted(cfg)
    fingerprint = _dataset_identity(workflow, cfg, ports)
    location = getattr(ports.blobs, "location", None)
    blob_store = {"adapter": manifest["blobs"], **(location() if location is not None else {})}
    return Prepared(
        recipe,
        workflow,
        cfg,
        record,
        kconfig.identity_hash(recipe.config, record),
        fingerprint,
        home,
        manifest,
        ports,
        lineage,
        paths,
        kconfig.operating_of(recipe.config, record),
        blob_store,
    )


def _write_config(p: Prepared) -> Any:
    def write(run_dir: Path) -> None:
        text = json.dumps(
            {"recipe": p.recipe.name, "config": p.record, "config_hash": p.config_hash},
            indent=2,
            sort_keys=True,
        )
        (run_dir / "config.json").write_text(text + "\n", encoding="utf-8")

    return write


def distribute(p: Prepared, run_id: str, mirror: Mirror | None) -> Mirror | None:
    """On several processes, rank 0's side of the run: the training backend made data-parallel,
    and the mirror, which tells the other processes what to run, told what to build. None (no
    mirror) on one process."""
    if mirror is None or mirror.world_size <= 1:
        return None
    data_parallel(p.ports, p.manifest, mirror.collectives)
    mirror.setup = Setup(
        run_id=run_id,
        workflow=p.recipe.workflow,
        config=p.config,
        manifest=dict(p.manifest),
        lineage={ref.role: ref for ref in p.lineage},
        lineage_paths=dict(p.lineage_paths),
    )
    return mirror


def data_parallel(ports: Ports, manifest: dict[str, str], collectives: Collectives) -> None:
    make_parallel = getattr(ports.training, "data_parallel", None)
    if make_parallel is None:
        raise ConfigError(
            f"the {manifest['training']!r} training backend runs on one process; run it "
            "without torchrun (or with --nproc-per-node 1)"
        )
    make_parallel(collectives)


def follow(collectives: Collectives, scratch: Path) -> int:
    """A process other than rank 0: follow rank 0's attempt (``kitchen.engine.distributed``)
    and exit with its code. Nothing is read from or written to the run's store or home."""
    from kitchen.workflows import get_workflow

    def open_run(setup: Setup, home: Path) -> tuple[Workflow, Ports, dict[str, Any], Any]:
        workflow = get_workflow(setup.workflow)
        made = {  # not the run's blob store: rank 0 alone reads and writes it
            port: registry.lookup(port, setup.manifest[port])(setup.config, home)
            for port in ("training", "datasets")
        }
        ports = Ports(
            training=made["training"],
            datasets=made["datasets"],
            blobs=FollowerBlobs(collectives, home),
        )
        data_parallel(ports, setup.manifest, collectives)
        code = workflow.code() if workflow.code is not None else {}
        return workflow, ports, dict(code), workflow.resources()

    return Follower(collectives, open_run, scratch).run()


def _runner(
    p: Prepared,
    store: EventLog,
    run_id: str,
    reporter: Reporter,
    trace_console: bool,
    mirror: Mirror | None = None,
) -> Runner:
    from kitchen.engine.telemetry import Telemetry

    runner = Runner(
        store=store,
        workflow=p.workflow,
        run_id=run_id,
        config=p.config,
        home=p.home,
        ports=p.ports,
        lineage={ref.role: ref for ref in p.lineage},
        lineage_paths=p.lineage_paths,
        telemetry=Telemetry(trace_console=trace_console),
        reporter=trackers.feeding(
            reporter, store, run_id, p.home / run_id, list(getattr(p.config, "loggers", None) or [])
        ),
        on_created=_write_config(p),
        snapshot_every=snapshots.every_from_env(),
        commit_window_s=window_from_env(),
        operating=p.operating,
        float_moving=kconfig.float_moving_keys(p.recipe.config),
        mirror=mirror,
        # signal handlers can be set from the main thread only: a run started from another
        # thread (a notebook's worker, a script's pool) is stopped with ``kitchen cancel``
        handle_signals=threading.current_thread() is threading.main_thread(),
    )
    if isinstance(runner.reporter, trackers.Feeding):
        runner.reporter.record = runner.uow.record  # a tracker's own run id goes on record
    return runner


def make_runner(
    p: Prepared, store: EventLog, run_id: str, reporter: Reporter, trace_console: bool = False
) -> Runner:
    """The runner of one process's run (a fork's, or the scratch copy a fork re-executes)."""
    return _runner(p, store, run_id, reporter, trace_console)


def check_run_id(rid: str) -> str:
    if not valid_run_id(rid):
        raise ConfigError(f"run id {rid!r} is not allowed: {RUN_ID_RULE}")
    return rid


def start(
    p: Prepared,
    store: EventLog,
    run_id: str | None,
    reporter: Reporter,
    trace_console: bool = False,
    mirror: Mirror | None = None,
) -> int:
    rid = check_run_id(run_id or new_run_id(p.recipe.name))
    runner = _runner(p, store, rid, reporter, trace_console, distribute(p, rid, mirror))
    created = ev.RunCreated(
        recipe=p.recipe.name,
        workflow=p.recipe.workflow,
        config=p.record,
        config_hash=p.config_hash,
        seed=int(getattr(p.config, "seed", 0)),
        versions=versions(),
        data_fingerprint=p.data_fingerprint,
        run_dir=rid,
        lineage=p.lineage,
        blob_store=p.blob_store,
    )
    try:
        return runner.start(created)
    finally:
        if runner.telemetry is not None:
            runner.telemetry.shutdown()


def _recorded_blob_store(state: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides, with the blob store the run recorded unless they (or KITCHEN_BLOBS_URL)
    name one: a resume reads the run's blobs from where they were written, whatever today's
    recipe defaults to."""
    recorded = state.blob_store.get("adapter")
    if recorded is None or _names_blob_store(overrides):
        return overrides
    return {f"adapters.{kconfig.BLOBS}": recorded, **overrides}


def _names_blob_store(overrides: dict[str, Any]) -> bool:
    adapters = overrides.get("adapters")
    return (
        f"adapters.{kconfig.BLOBS}" in overrides
        or (isinstance(adapters, dict) and kconfig.BLOBS in adapters)
        or blobs_adapter_of_setting() is not None
    )


def _recorded_location(state: Any, overrides: dict[str, Any]) -> dict[str, Any] | None:
    """Where the run's blobs are, as its RunCreated says, for a resume that names no other
    store: node B needs only the database and the bucket's credentials, not the setting."""
    if _names_blob_store(overrides) or not state.blob_store:
        return None
    return {k: v for k, v in state.blob_store.items() if k != "adapter"}


def _check_blob_store(run_id: str, state: Any, now: dict[str, Any]) -> None:
    """A resume pointed at another blob store than the run's is refused in one line."""
    recorded = dict(state.blob_store)
    if recorded and recorded != now:
        raise ConfigError(
            f"run {run_id!r} keeps its blobs in {_store_text(recorded)} (its RunCreated); this "
            f"resume points at {_store_text(now)}: resume without that setting, or move the "
            "blobs first"
        )


def _check_out_of_memory(run_id: str, state: Any, operating_changes: list[str]) -> None:
    """A run that ran out of memory resumes only with other operating settings: the same ones
    would fail the same way."""
    if state.fault is None or state.fault[0] != OutOfMemory.fault or operating_changes:
        return
    raise ConfigError(
        f"run {run_id!r} ran out of memory with these settings; resume it with less per "
        f"micro-batch or with checkpointing, e.g. `kitchen resume {run_id} "
        "max_tokens_per_microbatch=4096` or `gradient_checkpointing=true`"
    )


def _store_text(store: dict[str, Any]) -> str:
    rest = ", ".join(f"{k}={v}" for k, v in sorted(store.items()) if k != "adapter")
    return f"the {store.get('adapter')!r} blob store" + (f" ({rest})" if rest else "")


def resume(
    store: EventLog,
    run_id: str,
    state: Any,
    overrides: Sequence[str] | Mapping[str, Any],
    reporter: Reporter,
    *,
    force: bool = False,
    trace_console: bool = False,
    mirror: Mirror | None = None,
) -> int:
    from kitchen.recipes import load_recipe

    recipe = load_recipe(state.recipe)
    renamed = recipe.renamed
    before = policy.last_operating(state)
    parsed = kconfig.parse_overrides(overrides)
    asked = _recorded_blob_store(state, parsed)
    as_before = kconfig.restore(recipe.config, state.config, {}, renamed, before)
    cfg = kconfig.restore(recipe.config, state.config, asked, renamed, before)
    home = kitchen_home()
    lineage = list(state.lineage)
    changed = [why for ref in lineage if (why := klineage.changed(ref, home)) is not None]
    if changed and not force:
        raise ConfigError(f"run {run_id!r}: {changed[0]}; resume with --force to continue anyway")
    paths = {ref.role: klineage.local_path(ref, home) for ref in lineage}
    p = identify(
        recipe, cfg, lineage, paths, None, _recorded_location(state, parsed), new_run=False
    )
    _check_blob_store(run_id, state, p.blob_store)
    reachable = getattr(p.ports.blobs, "check_reachable", None)
    if reachable is not None:
        reachable("")  # unreachable: BlobStoreUnavailable (exit 75) before anything is written
    was = kconfig.redacted(as_before)
    operating_changes = kconfig.changes(kconfig.operating_of(recipe.config, was), p.operating)
    _check_out_of_memory(run_id, state, operating_changes)
    runner = _runner(p, store, run_id, reporter, trace_console, distribute(p, run_id, mirror))
    threads = p.ports.training.describe().get("torch_threads")
    identity = Identity(
        p.config_hash,
        p.data_fingerprint,
        versions(),
        int(threads) if threads is not None else None,
        created_config_hash=kconfig.identity_hash(recipe.config, was),
        lineage_changes=tuple(changed),
        operating_changes=tuple(operating_changes),
    )
    try:
        return runner.resume(identity, force=force)
    finally:
        if runner.telemetry is not None:
            runner.telemetry.shutdown()
