"""Transition tables: every legal transition, illegal ones rejected, terminals stay terminal."""

from __future__ import annotations

from typing import Any

import pytest

from kitchen.engine.machine import RunMachine
from kitchen.errors import IllegalTransition
from kitchen.spec import Loop, Stage, Transition, Workflow

ALWAYS = {"save_due": lambda v: v["save"], "more": lambda v: v["more"]}


def small_workflow() -> Workflow:
    return Workflow(
        "small",
        body=(
            Stage("setup"),
            Loop(
                "batch",
                (Stage("get_batch"), Stage("train"), Stage("save", when="save_due")),
                again="more",
            ),
        ),
        teardown=(Stage("cleanup"),),
        conditions=ALWAYS,
    )


def test_compiled_table_lists_every_transition_written_by_hand() -> None:
    rows = small_workflow().compile().rows
    expected = [
        Transition("setup", "start", "setup"),
        Transition("get_batch", "setup", "get_batch"),
        Transition("train", "get_batch", "train"),
        Transition("save", "train", "save", ("save_due",)),
        Transition("get_batch", "save", "get_batch", ("more",)),
        Transition("get_batch", "train", "get_batch", ("!save_due", "more")),
        Transition("cleanup", "save", "cleanup", ("!more",)),
        Transition("cleanup", "train", "cleanup", ("!save_due", "!more")),
        Transition("finish", "cleanup", "completed"),
    ]
    assert [r for r in rows if r.trigger not in ("fail", "cancel")] == expected
    live = ["start", "setup", "get_batch", "train", "save", "cleanup"]
    assert [r.source for r in rows if r.trigger == "fail"] == live
    assert [r.source for r in rows if r.trigger == "cancel"] == live


def _drive(m: RunMachine, views: list[dict[str, Any]]) -> list[str]:
    taken = []
    for v in views:
        row = m.choose(v)
        assert row is not None
        m.take(row)
        taken.append(row.trigger)
    return taken


def test_conditions_pick_the_edge() -> None:
    wf = small_workflow()
    m = RunMachine(wf.compile(), wf.conditions, "start")
    views = [
        {"save": False, "more": True},  # setup
        {"save": False, "more": True},  # get_batch
        {"save": False, "more": True},  # train
        {"save": True, "more": True},  # save
        {"save": False, "more": True},  # get_batch
        {"save": False, "more": True},  # train
        {"save": False, "more": False},  # cleanup (no save)
        {"save": False, "more": False},  # finish
    ]
    assert _drive(m, views) == [
        "setup",
        "get_batch",
        "train",
        "save",
        "get_batch",
        "train",
        "cleanup",
        "finish",
    ]
    assert m.state == "completed" and m.terminal


def test_illegal_trigger_is_rejected_before_anything_moves() -> None:
    wf = small_workflow()
    m = RunMachine(wf.compile(), wf.conditions, "setup")
    with pytest.raises(IllegalTransition, match="'train' is not allowed from state 'setup'"):
        m.check("train")
    assert m.state == "setup"


@pytest.mark.parametrize("terminal", ["completed", "failed", "cancelled"])
def test_terminal_states_stay_terminal(terminal: str) -> None:
    wf = small_workflow()
    m = RunMachine(wf.compile(), wf.conditions, terminal)
    assert m.choose({"save": True, "more": True}) is None
    for trigger in ("fail", "cancel", "setup", "get_batch", "finish"):
        with pytest.raises(IllegalTransition):
            m.check(trigger)
    with pytest.raises(IllegalTransition):
        m.fail()
    assert m.state == terminal


def test_fail_and_cancel_from_any_live_state() -> None:
    wf = small_workflow()
    for state in ("start", "setup", "get_batch", "train", "save", "cleanup"):
        m = RunMachine(wf.compile(), wf.conditions, state)
        m.fail()
        assert m.state == "failed"
        m = RunMachine(wf.compile(), wf.conditions, state)
        m.cancel()
        assert m.state == "cancelled"


def test_bad_workflows_are_refused_at_compile_time() -> None:
    with pytest.raises(ValueError, match="must start with an unconditional stage"):
        Workflow(
            "w", body=(Loop("l", (Stage("a", when="x"),), again="x"),), conditions={"x": bool}
        ).compile()
    with pytest.raises(ValueError, match="used twice"):
        Workflow("w", body=(Stage("a"), Stage("a"))).compile()
    with pytest.raises(ValueError, match="without a predicate: \\['nope'\\]"):
        Workflow("w", body=(Stage("a", when="nope"),)).compile()


def test_unknown_initial_state_is_refused() -> None:
    wf = small_workflow()
    with pytest.raises(IllegalTransition, match="not a state"):
        RunMachine(wf.compile(), wf.conditions, "nowhere")


def test_mermaid_and_text_render_every_edge() -> None:
    table = small_workflow().compile()
    text = table.text()
    assert "train --save--> save  [save_due]" in text
    assert "cleanup --finish--> completed" in text
    mermaid = table.mermaid()
    assert mermaid.startswith("stateDiagram-v2")
    assert "    train --> save: save [save_due]" in mermaid
    assert "    [*] --> setup: setup" in mermaid


def test_the_table_decides_once_and_the_machine_only_follows() -> None:
    wf = small_workflow()
    calls: list[str] = []

    def counted(name: str) -> Any:
        def predicate(v: dict[str, Any]) -> bool:
            calls.append(name)
            return bool(v[name.removesuffix("_due")])

        return predicate

    conditions = {"save_due": counted("save_due"), "more": counted("more")}
    m = RunMachine(wf.compile(), conditions, "train")
    row = m.choose({"save": False, "more": True})
    assert row is not None and row.dest == "get_batch"
    assert sorted(calls) == ["more", "save_due"]  # each predicate once per choice
    calls.clear()
    m.take(row)  # taking the row evaluates nothing again
    assert calls == [] and m.state == "get_batch"


def test_a_row_from_another_state_or_table_is_refused() -> None:
    wf = small_workflow()
    m = RunMachine(wf.compile(), wf.conditions, "train")
    row = m.choose({"save": True, "more": True})
    assert row is not None and row.trigger == "save"
    with pytest.raises(IllegalTransition):
        m.take(Transition("save", "train", "save", ("made_up",)))
    m.take(row)
    with pytest.raises(IllegalTransition):
        m.take(row)  # the run has left "train"
    assert m.state == "save"


def test_set_up_is_a_field_and_the_old_options_still_declare_it() -> None:
    assert Stage("load", setup=True).setup
    old = Stage("load", options=(("setup", True),))
    assert old.setup and old.option("setup") is True
    assert not Stage("train").setup and Stage("train").option("setup", "no") == "no"
    assert Stage("x", options=(("other", 1),)).option("other") == 1
