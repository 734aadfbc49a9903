"""The fold: golden histories with hand-written expected states, purity, upcasting."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kitchen.engine import events as ev
from kitchen.engine.state import Recorded, RunState, advance, apply, fold
from kitchen.errors import EventSchemaError

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.json"))
DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def _records(history: dict[str, Any]) -> list[Recorded]:
    return [
        Recorded(e["seq"], None, ev.decode(e["type"], e["schema_version"], e["payload"]))
        for e in history["events"]
    ]


def _view(state: RunState) -> dict[str, Any]:
    return {
        "status": state.status,
        "machine_state": state.machine_state,
        "last_seq": state.last_seq,
        "attempt": state.attempt,
        "step": state.step,
        "epoch": state.epoch,
        "recipe": state.recipe,
        "optim_steps": list(state.optim_steps),
        "step_metrics": {str(k): v for k, v in state.step_metrics.items()},
        "eval_metrics": {str(k): v for k, v in state.eval_metrics.items()},
        "checkpoints": [
            {"seq": c.seq, "step": c.step, "status": c.status} for c in state.checkpoints
        ],
        "superseded": [list(r) for r in state.superseded],
        "adapter_uri": state.adapter_uri,
        "final_metrics": state.final_metrics,
        "attempts_ended": [a.ended for a in state.attempts],
        "mismatches": [
            {"step": m.step, "logged": m.logged, "replayed": m.replayed} for m in state.mismatches
        ],
        "superseded_metrics": {str(k): [v[0], v[1]] for k, v in state.superseded_metrics.items()},
        "error": list(state.error) if state.error else None,
        "fault": list(state.fault) if state.fault else None,
    }


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_history_folds_to_the_expected_state(path: Path) -> None:
    history = json.loads(path.read_text())
    state = fold(history["run_id"], _records(history))
    got = _view(state)
    for key, want in history["expected"].items():
        assert got[key] == want, key


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_folding_one_by_one_equals_folding_the_batch(path: Path) -> None:
    history = json.loads(path.read_text())
    records = _records(history)
    batch = fold(history["run_id"], records)
    state = RunState(run_id=history["run_id"])
    for rec in records:
        state = fold(history["run_id"], [rec], state)
    assert state == batch


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_advancing_one_by_one_equals_folding_the_batch(path: Path) -> None:
    history = json.loads(path.read_text())
    records = _records(history)
    state = RunState(run_id=history["run_id"])
    owned: set[str] = set()
    for rec in records:
        state = advance(state, rec, owned)
    assert state == fold(history["run_id"], records)


def test_advance_keeps_the_old_states_fields_and_grows_owned_dicts_in_place() -> None:
    history = json.loads((Path(__file__).parent / "golden" / "crash_resume.json").read_text())
    records = _records(history)
    owned: set[str] = set()
    state = RunState(run_id="golden-2")
    for rec in records[:8]:
        state = advance(state, rec, owned)
    after = advance(state, records[8], owned)
    assert after is not state
    assert (state.last_seq, after.last_seq) == (8, 9)
    # step_metrics is shared by the runner's line of states: one dict, grown, never copied
    assert "step_metrics" in owned and after.step_metrics is state.step_metrics


def test_apply_does_not_mutate_its_input() -> None:
    history = json.loads((Path(__file__).parent / "golden" / "crash_resume.json").read_text())
    records = _records(history)
    before = fold("golden-2", records[:8])
    snapshot = (dict(before.step_metrics), before.optim_steps, before.checkpoints, before.status)
    after = apply(before, records[8])
    apply(after, records[9])
    assert (
        dict(before.step_metrics),
        before.optim_steps,
        before.checkpoints,
        before.status,
    ) == snapshot
    assert before.step_metrics == {0: {"train_mean_nll": 3.0}, 1: {"train_mean_nll": 2.75}}


def test_every_event_type_is_documented() -> None:
    text = DOCS.read_text()
    documented = set(re.findall(r"\*\*([A-Z][A-Za-z]+)\*\*", text))
    assert set(ev.EVENT_TYPES) <= documented, set(ev.EVENT_TYPES) - documented


def test_unknown_type_and_newer_version_fail_loudly() -> None:
    with pytest.raises(EventSchemaError, match="unknown event type 'RunExploded'"):
        ev.decode("RunExploded", 1, {})
    with pytest.raises(EventSchemaError, match="schema_version 2"):
        ev.decode("RunCancelled", 2, {"reason": "x", "step": 1})


def test_invalid_payload_names_the_field() -> None:
    with pytest.raises(EventSchemaError, match="RunCancelled payload is invalid at reason"):
        ev.decode("RunCancelled", 1, {"step": 1})


def test_older_version_is_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend RunCancelled is now v2, where v1's "why" key was renamed to "reason".
    monkeypatch.setattr(ev.RunCancelled, "schema_version", 2)
    monkeypatch.setitem(
        ev.UPCASTERS,
        ("RunCancelled", 1),
        lambda p: {"reason": p["why"], "step": p.get("step")},
    )
    event = ev.decode("RunCancelled", 1, {"why": "operator asked", "step": 3})
    assert event == ev.RunCancelled(reason="operator asked", step=3)
    with pytest.raises(EventSchemaError, match="reads up to 2"):
        ev.decode("RunCancelled", 3, {"reason": "x"})


def test_missing_upcaster_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ev.RunCancelled, "schema_version", 2)
    with pytest.raises(EventSchemaError, match="no upcaster for RunCancelled v1 -> v2"):
        ev.decode("RunCancelled", 1, {"reason": "x"})


def test_attempt_interrupted_v1_is_a_signal_and_v2_may_name_a_fault() -> None:
    old = ev.decode("AttemptInterrupted", 1, {"attempt": 2, "signal": "SIGTERM", "step": 1})
    assert old == ev.AttemptInterrupted(attempt=2, signal="SIGTERM", step=1)
    assert (old.fault, old.reason, old.stage) == (None, None, None)
    assert old.payload() == {"attempt": 2, "signal": "SIGTERM", "step": 1}  # as v1 wrote it
    payload = {"attempt": 1, "step": 4, "fault": "disk_full", "reason": "full", "stage": "s"}
    new = ev.decode("AttemptInterrupted", 2, payload)
    assert new.signal is None and new.fault == "disk_full"
    assert new.payload() == payload


def test_attempt_started_before_v3_ran_on_one_process() -> None:
    v2 = {
        "attempt": 1,
        "worker": "vm:1:ab",
        "host": "vm",
        "pid": 1,
        "torch_threads": 2,
        "operating": {"device": "cpu"},
        "backend": {"backend": "local_torch", "device": "cpu"},
    }
    old = ev.decode("AttemptStarted", 2, v2)
    assert (old.world_size, old.dist_backend) == (1, None)
    assert old.backend == {"backend": "local_torch", "device": "cpu"}
    new = ev.decode("AttemptStarted", 3, {**v2, "world_size": 2, "dist_backend": "gloo"})
    assert (new.world_size, new.dist_backend) == (2, "gloo")
    assert ev.AttemptStarted.schema_version == 3


def test_the_next_attempt_clears_the_fault() -> None:
    history = json.loads((Path(__file__).parent / "golden" / "fault_resume.json").read_text())
    records = _records(history)
    state = fold(history["run_id"], records)
    assert state.fault is not None
    again = ev.AttemptStarted(attempt=2, worker="h:11:bb", host="h", pid=11, resumed_from=5)
    state = apply(state, Recorded(10, None, again))
    assert (state.status, state.fault) == ("running", None)
