"""``kitchen recipes``: list recipes, or print a recipe's workflow graph."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipes", help="list recipes; --graph NAME prints a workflow's transitions")
    p.add_argument(
        "--graph", metavar="NAME", help="print the states and transitions of recipe NAME"
    )
    p.add_argument("--mermaid", action="store_true", help="with --graph: Mermaid stateDiagram")
    p.set_defaults(func=_recipes)


def _recipes(args: argparse.Namespace) -> int:
    from kitchen.recipes import load_recipe, recipe_names
    from kitchen.workflows import get_workflow

    if args.graph:
        recipe = load_recipe(args.graph)
        table = get_workflow(recipe.workflow).compile()
        print(table.mermaid() if args.mermaid else table.text())
        return 0
    for name in recipe_names():
        recipe = load_recipe(name)
        print(f"{name:<16} {recipe.description}  [workflow: {recipe.workflow}]")
    return 0
