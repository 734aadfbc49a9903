"""Workflows by name, through ``kitchen.registry`` (built-ins, entry points in the group
``kitchen.workflows``, or ``kitchen.registry.register``). Each is a
:class:`kitchen.workflow.Workflow`: its table, its declarations, and its stage code."""

from __future__ import annotations

from kitchen import registry
from kitchen.workflow import Workflow


def get_workflow(name: str) -> Workflow:
    found = registry.lookup("workflows", name)
    if not isinstance(found, Workflow):
        raise TypeError(f"workflow {name!r} is registered as {type(found).__name__}, not Workflow")
    return found
