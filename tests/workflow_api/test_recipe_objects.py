"""A recipe is a typed ``Recipe``: the built-ins declare one, an untyped module is read into one."""

from __future__ import annotations

import types

import pytest
from pydantic import BaseModel

from kitchen.errors import ConfigError
from kitchen.recipes import as_recipe, load_recipe, recipe_names
from kitchen.spec import Recipe


@pytest.mark.parametrize("name", ["sl_basic", "dpo_basic", "rl_basic"])
def test_builtin_recipes_are_typed(name: str) -> None:
    recipe = load_recipe(name)
    assert isinstance(recipe, Recipe)
    assert recipe.name == name and name in recipe_names()
    assert recipe.adapters["training"] == "local_torch"


def test_a_module_with_the_untyped_attributes_is_read_into_a_recipe() -> None:
    class Config(BaseModel):
        steps: int = 3

    module = types.ModuleType("old_recipe")
    module.NAME = "old"  # type: ignore[attr-defined]
    module.DESCRIPTION = "an old recipe"  # type: ignore[attr-defined]
    module.WORKFLOW = "supervised"  # type: ignore[attr-defined]
    module.ADAPTERS = {"training": "oven"}  # type: ignore[attr-defined]
    module.Config = Config  # type: ignore[attr-defined]
    module.RENAMED = {"old_key": "steps"}  # type: ignore[attr-defined]

    recipe = as_recipe(module, "old")
    assert recipe == Recipe(
        name="old",
        workflow="supervised",
        config=Config,
        description="an old recipe",
        adapters={"training": "oven"},
        renamed={"old_key": "steps"},
    )


def test_a_module_declaring_recipe_is_that_recipe() -> None:
    declared = Recipe(name="new", workflow="supervised", config=BaseModel)
    module = types.ModuleType("new_recipe")
    module.RECIPE = declared  # type: ignore[attr-defined]
    assert as_recipe(module, "new") is declared


def test_anything_else_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="neither a kitchen"):
        as_recipe(types.ModuleType("empty"), "empty")
