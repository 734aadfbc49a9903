"""Every stage a workflow names resolves to code, checked at import rather than mid-run.

A workflow refers to its stage code by name (``Workflow.code``, for the built-in workflows a
map of stage name → module under ``kitchen.workflows``) and to its conditions by name; both are
imported only when a run starts. This test imports them all, for every built-in workflow and
for the test plugin's, so a reference that does not resolve fails here, and a tool can follow
each reference the same way.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from kitchen.engine import registry
from kitchen.engine.builtins import BUILTIN
from kitchen.spec import Workflow

PLUGIN = Path(__file__).parent / "plugin"


def _builtin(name: str) -> Workflow:
    wf = registry.lookup("workflows", name)
    assert isinstance(wf, Workflow)
    return wf


def _plugin() -> Workflow:
    if str(PLUGIN) not in sys.path:
        sys.path.insert(0, str(PLUGIN))
    wf = importlib.import_module("bakery").WORKFLOW
    assert isinstance(wf, Workflow)
    return wf


@pytest.mark.parametrize("name", [*sorted(BUILTIN["workflows"]), "bakery (plugin)"])
def test_every_stage_reference_resolves(name: str) -> None:
    wf = _plugin() if name.endswith("(plugin)") else _builtin(name)
    table = wf.compile()  # every condition a stage or loop names has a predicate
    assert wf.code is not None, f"workflow {wf.name!r} has no stage code"
    code = wf.code()  # imports every stage module the workflow refers to
    names = {s.name for s in wf.stages()}
    assert sorted(names - set(code)) == [], "stages without code"
    assert sorted(set(code) - names) == [], "code for stages the workflow does not have"
    for stage in sorted(names):
        assert callable(code[stage]), f"{wf.name}: stage {stage!r} is not callable"
    for state in table.states:
        if state not in ("start", "completed", "failed", "cancelled"):
            assert wf.stage_at(state).slot == state
