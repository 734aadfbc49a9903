"""Recipes: each a :class:`kitchen.spec.Recipe` (a name, a description, a pydantic config,
a workflow and an adapters manifest), declared as ``RECIPE`` in its module.

Recipe modules stay light (no torch at import) so ``kitchen recipes`` lists them instantly.
They are found through ``kitchen.engine.registry`` (built-ins, entry points in the group
``kitchen.recipes``, or ``kitchen.engine.registry.register``), as a ``Recipe``, a module holding one
as ``RECIPE``, or a module with the attributes recipes had before they were typed (``NAME``,
``DESCRIPTION``, ``WORKFLOW``, ``ADAPTERS``, ``Config``, ``RENAMED``), which is read into one.
"""

from __future__ import annotations

from types import ModuleType

from kitchen.engine import registry
from kitchen.errors import ConfigError
from kitchen.spec import Recipe


def load_recipe(name: str) -> Recipe:
    return as_recipe(registry.lookup("recipes", name), name)


def as_recipe(found: object, name: str) -> Recipe:
    """What the registry found under ``name``, as a ``Recipe``."""
    if isinstance(found, Recipe):
        return found
    if isinstance(found, ModuleType):
        declared = getattr(found, "RECIPE", None)
        if isinstance(declared, Recipe):
            return declared
        if hasattr(found, "Config") and hasattr(found, "WORKFLOW"):
            return _from_module(found, name)
    raise ConfigError(
        f"recipe {name!r} is {found!r}: neither a kitchen.spec.Recipe nor a module that "
        "holds one as RECIPE"
    )


def _from_module(module: ModuleType, name: str) -> Recipe:
    """A recipe module with the attributes of an untyped recipe, read into a ``Recipe``."""
    return Recipe(
        name=str(getattr(module, "NAME", name)),
        workflow=str(module.WORKFLOW),
        config=module.Config,
        description=str(getattr(module, "DESCRIPTION", "")),
        adapters=dict(getattr(module, "ADAPTERS", {})),
        renamed=dict(getattr(module, "RENAMED", {})),
    )


def recipe_names() -> list[str]:
    return registry.names("recipes")
