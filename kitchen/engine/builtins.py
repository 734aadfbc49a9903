"""The recipes, workflows and adapters that ship with kitchen: a catalogue of import targets
(``module`` or ``module:attribute``) that ``kitchen.engine.registry`` reads. Nothing is
imported until a name is used. Code outside kitchen registers its own through
``kitchen.engine.registry`` instead."""

from __future__ import annotations

BUILTIN: dict[str, dict[str, str]] = {
    "recipes": {
        "sl_basic": "kitchen.recipes.sl_basic:RECIPE",
        "dpo_basic": "kitchen.recipes.dpo_basic:RECIPE",
        "rl_basic": "kitchen.recipes.rl_basic:RECIPE",
        "rl_multiturn": "kitchen.recipes.rl_multiturn:RECIPE",
        "distill_on_policy": "kitchen.recipes.distill_on_policy:RECIPE",
        "distill_off_policy": "kitchen.recipes.distill_off_policy:RECIPE",
    },
    "workflows": {
        "supervised": "kitchen.workflows.supervised:WORKFLOW",
        "preference": "kitchen.workflows.preference:WORKFLOW",
        "rl": "kitchen.workflows.rl:WORKFLOW",
        "on_policy_distillation": "kitchen.workflows.distillation:ON_POLICY",
        "off_policy_distillation": "kitchen.workflows.distillation:OFF_POLICY",
    },
    "training": {
        "local_torch": "kitchen.adapters.local_torch.service:create_service",
        "tinker": "kitchen.adapters.tinker:create_service",
    },
    "datasets": {"hf_datasets": "kitchen.adapters.hf_datasets:create_store"},
    "blobs": {
        "local": "kitchen.adapters.blobs:create_store",
        "fsspec": "kitchen.adapters.fsspec_blobs:create_store",
    },
}
