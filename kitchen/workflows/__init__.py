"""Workflows by name, through ``kitchen.engine.registry`` (built-ins, entry points in the group
``kitchen.workflows``, or ``kitchen.engine.registry.register``). Each is a
:class:`kitchen.spec.Workflow`: its table, its declarations, and its stage code."""

from __future__ import annotations

from kitchen.engine import registry
from kitchen.spec import Workflow


def get_workflow(name: str) -> Workflow:
    found = registry.lookup("workflows", name)
    if not isinstance(found, Workflow):
        raise TypeError(f"workflow {name!r} is registered as {type(found).__name__}, not Workflow")
    return found
