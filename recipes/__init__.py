"""Recipes: a name, a description, a pydantic Config, a workflow and an adapters manifest.

Recipe modules stay light (no torch at import) so ``kitchen recipes`` lists them instantly.
They are found through ``kitchen.registry`` (built-ins, entry points in the group
``kitchen.recipes``, or ``kitchen.registry.register``).
"""

from __future__ import annotations

from types import ModuleType

from kitchen import registry


def load_recipe(name: str) -> ModuleType:
    recipe: ModuleType = registry.lookup("recipes", name)
    return recipe


def recipe_names() -> list[str]:
    return registry.names("recipes")
