"""Recipes: a name, a description, a pydantic Config, a workflow and an adapters manifest.

Recipe modules stay light (no torch at import) so ``kitchen recipes`` lists them instantly.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from kitchen.errors import NotFound

RECIPES = {
    "sl_basic": "kitchen.recipes.sl_basic",
}


def load_recipe(name: str) -> ModuleType:
    target = RECIPES.get(name)
    if target is None:
        raise NotFound(f"unknown recipe {name!r}; known recipes: {', '.join(sorted(RECIPES))}")
    return importlib.import_module(target)
