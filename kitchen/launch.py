"""From a recipe name and settings to a running attempt: the checks, the identity, the runner.

``prepare`` does every check that needs no heavy work (recipe, keys, types, ranges, files, home
writable, database reachable, dataset readable) before anything is written, so a refused run
leaves nothing behind. ``start``/``resume`` then build the Runner with the recipe's workflow and
adapters.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from kitchen import config as kconfig
from kitchen import events as ev
from kitchen.errors import ConfigError
from kitchen.runner import Identity, Reporter, Runner

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LIBRARIES = ("kitchen-posttrain", "torch", "transformers", "peft", "datasets", "tokenizers")


def kitchen_home() -> Path:
    return Path(os.environ.get("KITCHEN_HOME", "kitchen-runs")).expanduser().resolve()


def check_home_writable(home: Path) -> None:
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
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


@dataclass
class Prepared:
    recipe: ModuleType
    config: Any
    record: dict[str, Any]
    config_hash: str
    data_fingerprint: str | None
    home: Path


def _dataset_identity(cfg: Any) -> str:
    """Read the training rows (so bad files fail before the run) and fingerprint them."""
    from kitchen.adapters import registry

    registry.check("dataset", cfg.dataset_adapter)
    registry.check("training", cfg.training_adapter)
    store = registry.dataset_store(cfg.dataset_adapter)
    rows = store.load(cfg.dataset, "train", columns=("messages",))
    for index, row in enumerate(rows):
        _check_chat_row(cfg.dataset, index, row["messages"])
    return str(store.fingerprint(cfg.dataset, "train"))


def _check_chat_row(source: str, index: int, messages: Any) -> None:
    ok = isinstance(messages, list) and bool(messages)
    for m in messages if ok else ():
        if not (
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
        ):
            ok = False
            break
    if not ok:
        raise ConfigError(
            f"{source}: row {index}: 'messages' must be a non-empty list of "
            "{'role': str, 'content': str}; fix or drop that row"
        )


def _check_renderer(cfg: Any) -> None:
    from kitchen.renderers import RENDERERS

    if cfg.renderer_name not in RENDERERS:
        raise ConfigError(
            f"unknown renderer_name {cfg.renderer_name!r}; known: {', '.join(sorted(RENDERERS))}"
        )


def prepare(recipe_name: str, overrides: list[str], config_file: str | None) -> Prepared:
    from kitchen.recipes import load_recipe

    recipe = load_recipe(recipe_name)
    file_data = kconfig.read_file(config_file) if config_file else {}
    cfg = kconfig.build(recipe.Config, file_data, kconfig.parse_overrides(overrides))
    return _identify(recipe, cfg)


def _check_model(cfg: Any) -> None:
    """A local model folder must hold a model; hub ids are checked when the session starts."""
    from kitchen.embedded import resolve_model

    name = str(cfg.model_name)
    path = Path(resolve_model(name)).expanduser()
    looks_local = path.exists() or name.startswith(("/", ".", "~")) or name.startswith("kitchen/")
    if looks_local and not (path / "config.json").is_file():
        raise ConfigError(
            f"model_name {name!r}: {str(path)!r} holds no model (no config.json); "
            "pass a folder written by save_pretrained, or a hub model id"
        )


def _identify(recipe: ModuleType, cfg: Any) -> Prepared:
    _check_renderer(cfg)
    _check_model(cfg)
    home = kitchen_home()
    check_home_writable(home)
    record = kconfig.redacted(cfg)
    fingerprint = _dataset_identity(cfg)
    return Prepared(recipe, cfg, record, kconfig.config_hash(record), fingerprint, home)


def _write_config(p: Prepared) -> Any:
    def write(run_dir: Path) -> None:
        text = json.dumps(
            {"recipe": p.recipe.NAME, "config": p.record, "config_hash": p.config_hash},
            indent=2,
            sort_keys=True,
        )
        (run_dir / "config.json").write_text(text + "\n", encoding="utf-8")

    return write


def _runner(
    p: Prepared, store: Any, run_id: str, reporter: Reporter, trace_console: bool
) -> Runner:
    from kitchen.adapters import registry
    from kitchen.telemetry import Telemetry
    from kitchen.workflows import load_workflow

    workflow, stages = load_workflow(p.recipe.WORKFLOW)
    return Runner(
        store=store,
        workflow=workflow,
        stages=stages,
        run_id=run_id,
        config=p.config,
        home=p.home,
        blobs=registry.blob_store(p.recipe.ADAPTERS.get("blobs", "local"), p.home),
        telemetry=Telemetry(trace_console=trace_console),
        reporter=reporter,
        on_created=_write_config(p),
    )


def start(
    p: Prepared, store: Any, run_id: str | None, reporter: Reporter, trace_console: bool = False
) -> int:
    rid = run_id or new_run_id(p.recipe.NAME)
    if not RUN_ID_RE.match(rid):
        raise ConfigError(
            f"run id {rid!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    runner = _runner(p, store, rid, reporter, trace_console)
    created = ev.RunCreated(
        recipe=p.recipe.NAME,
        workflow=p.recipe.WORKFLOW,
        config=p.record,
        config_hash=p.config_hash,
        seed=int(p.config.seed),
        versions=versions(),
        data_fingerprint=p.data_fingerprint,
        run_dir=rid,
    )
    try:
        return runner.start(created)
    finally:
        if runner.telemetry is not None:
            runner.telemetry.shutdown()


def resume(
    store: Any,
    run_id: str,
    state: Any,
    overrides: list[str],
    reporter: Reporter,
    *,
    force: bool = False,
    trace_console: bool = False,
) -> int:
    from kitchen.recipes import load_recipe

    recipe = load_recipe(state.recipe)
    cfg = kconfig.restore(recipe.Config, state.config, kconfig.parse_overrides(overrides))
    p = _identify(recipe, cfg)
    runner = _runner(p, store, run_id, reporter, trace_console)
    identity = Identity(p.config_hash, p.data_fingerprint, versions(), _torch_threads())
    try:
        return runner.resume(identity, force=force)
    finally:
        if runner.telemetry is not None:
            runner.telemetry.shutdown()


def _torch_threads() -> int | None:
    import torch

    return int(torch.get_num_threads())
