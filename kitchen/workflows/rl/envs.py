"""Env factories by name: the built-in ones, or any ``module.path:function`` a recipe names.

A factory takes an :class:`~kitchen.workflows.rl.env.EnvSetup` and returns an
:class:`~kitchen.workflows.rl.env.EnvBundle`; that is the whole plug-in interface.
"""

from __future__ import annotations

import importlib

from kitchen.errors import ConfigError
from kitchen.workflows.rl.env import EnvFactory

BUILTIN = {
    "arith": "kitchen.workflows.rl.arith:make_env",
    "feedback": "kitchen.workflows.rl.feedback:make_env",
    "judged": "kitchen.workflows.rl.judge:make_env",
}


def resolve(name: str) -> EnvFactory:
    target = BUILTIN.get(name, name)
    module, _, attr = target.partition(":")
    if not attr:
        known = ", ".join(sorted(BUILTIN))
        raise ConfigError(f"unknown env {name!r}: use one of {known} or module.path:function")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"env {name!r} cannot be loaded ({exc}); check the module path") from None
    if not callable(factory):
        raise ConfigError(f"env {name!r} is not a function taking an EnvSetup")
    return factory
