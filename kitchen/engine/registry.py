"""Where recipes, workflows and adapters are found by name — open to code outside kitchen.

Built-in names are listed in ``kitchen.engine.builtins`` (a catalogue, not engine code) as import
targets (``module`` or ``module:attribute``), so naming one costs nothing until it is used.
Outside code adds its own in either of two ways:

- a **registration call**, ``kitchen.engine.registry.register("recipes", "my_recipe", "pkg.mod")``,
  from code that runs before the lookup (a test, a script, a plugin's import);
- an **entry point** in its distribution's metadata, in the group ``kitchen.<kind>``
  (``kitchen.recipes``, ``kitchen.workflows``, ``kitchen.adapters.training``,
  ``kitchen.adapters.datasets``, ``kitchen.adapters.blobs``), read once on first lookup.

A registered name beats an entry point, which beats a built-in; adding a workflow therefore
edits no file of the engine.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from kitchen.engine.builtins import BUILTIN as _BUILTIN
from kitchen.errors import ConfigError, NotFound

KINDS = ("recipes", "workflows", "training", "datasets", "blobs")
_GROUPS = {
    "recipes": "kitchen.recipes",
    "workflows": "kitchen.workflows",
    "training": "kitchen.adapters.training",
    "datasets": "kitchen.adapters.datasets",
    "blobs": "kitchen.adapters.blobs",
}
_registered: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_entry_points: dict[str, dict[str, str]] = {}


def register(kind: str, name: str, target: Any) -> None:
    """Make ``name`` known: ``target`` is an import path (``module[:attr]``) or the object."""
    _check_kind(kind)
    _registered[kind][name] = target


def names(kind: str) -> list[str]:
    _check_kind(kind)
    return sorted({**_BUILTIN[kind], **_from_entry_points(kind), **_registered[kind]})


def lookup(kind: str, name: str) -> Any:
    """The object registered under ``name``, imported now; NotFound lists the known names."""
    _check_kind(kind)
    target = _registered[kind].get(name)
    if target is None:
        target = _from_entry_points(kind).get(name) or _BUILTIN[kind].get(name)
    if target is None:
        what = {"recipes": "recipe", "workflows": "workflow"}.get(kind, f"{kind} adapter")
        error = NotFound if kind in ("recipes", "workflows") else ConfigError
        known = f"known {kind}" if kind in ("recipes", "workflows") else "known"
        raise error(f"unknown {what} {name!r}; {known}: {', '.join(names(kind))}")
    return _resolve(target) if isinstance(target, str) else target


def run_blob_store(config: Mapping[str, Any], blob_store: Mapping[str, Any], home: Path) -> Any:
    """The blob store a run recorded (``RunCreated.blob_store``), built by its adapter's
    factory from the run's recorded config: what every reader of a run's blobs uses (replay's
    verification, lineage, the server), so none builds a store of its own on the side."""
    name = str(blob_store.get("adapter") or "local")
    location = {k: v for k, v in blob_store.items() if k != "adapter"}
    return build_blob_store(name, SimpleNamespace(**config), home, location)


def build_blob_store(
    name: str, config: Any, home: Path, location: Mapping[str, Any] | None = None
) -> Any:
    """The blob store ``name``'s factory builds: with ``location`` (where a run recorded its
    blobs, ``RunCreated.blob_store`` less the adapter's name) when given and the factory
    takes one, else from today's settings (a new run)."""
    factory = lookup("blobs", name)
    if location is not None and _takes_location(factory):
        return factory(config, home, location=dict(location))
    return factory(config, home)


def _takes_location(factory: Any) -> bool:
    try:
        return "location" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def _from_entry_points(kind: str) -> dict[str, str]:
    found = _entry_points.get(kind)
    if found is None:
        found = {ep.name: ep.value for ep in metadata.entry_points(group=_GROUPS[kind])}
        _entry_points[kind] = found
    return found


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown registry kind {kind!r}; kinds: {', '.join(KINDS)}")


__all__ = ["KINDS", "build_blob_store", "lookup", "names", "register", "run_blob_store"]
