"""The records of a fork, without training: RunCreated v4 and its upcaster, the fold of a
fork's carried artifacts, the ID@STEP grammar, the runs projection's parent and the tree."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kitchen.cli.runs import _as_tree
from kitchen.engine import events as ev
from kitchen.engine.fork import in_loop, parse_target
from kitchen.engine.state import Recorded, fold
from kitchen.errors import ConfigError
from kitchen.log_records import RunRow
from kitchen.store.projection import changes

WHEN = datetime(2026, 12, 6, tzinfo=UTC)
V3 = {
    "recipe": "sl_basic",
    "workflow": "supervised",
    "config": {"learning_rate": 0.003},
    "config_hash": "c" * 64,
    "seed": 0,
    "versions": {},
    "run_dir": "old",
    "lineage": [],
    "blob_store": {"adapter": "local"},
}
FORK = {
    "run_id": "p",
    "step": 6,
    "checkpoint": None,
    "from_step": 4,
    "reexecuted": 2,
    "mismatches": [],
    "forced": False,
    "sha256": "a" * 64,
    "bytes": 10,
    "overrides": {"learning_rate": 0.001},
    "artifacts": [
        {
            "kind": "reference_logprobs",
            "uri": "f/artifacts/reference_logprobs/logprobs.safetensors",
            "sha256": "b" * 64,
            "bytes": 5,
            "step": 0,
            "location": "local",
        }
    ],
}


def test_a_v3_run_created_reads_as_no_fork_and_a_non_fork_payload_leaves_the_key_out() -> None:
    assert ev.RunCreated.schema_version == 4
    old = ev.decode("RunCreated", 3, V3)
    assert isinstance(old, ev.RunCreated) and old.fork is None
    assert "fork" not in old.payload()
    forked = ev.decode("RunCreated", 4, {**V3, "fork": FORK})
    assert isinstance(forked, ev.RunCreated) and forked.fork is not None
    assert forked.payload()["fork"]["overrides"] == {"learning_rate": 0.001}


def test_the_fold_puts_a_forks_carried_artifacts_on_record_at_its_first_seq() -> None:
    created = ev.decode("RunCreated", 4, {**V3, "run_dir": "f", "fork": FORK})
    state = fold("f", [Recorded(1, WHEN, created)])
    assert state.fork is not None and (state.fork.run_id, state.fork.step) == ("p", 6)
    (found,) = state.effective_artifacts("reference_logprobs")
    assert (found.seq, found.uri, found.sha256) == (
        1,
        "f/artifacts/reference_logprobs/logprobs.safetensors",
        "b" * 64,
    )
    assert changes("RunCreated", {**V3, "fork": FORK}, 1, WHEN)["parent"] == "p"
    assert changes("RunCreated", V3, 1, WHEN)["parent"] is None


@pytest.mark.parametrize(
    ("text", "want"),
    [("run-1@20", ("run-1", 20)), ("run-1@step-000020", ("run-1", 20)), ("run-1", ("run-1", None))],
)
def test_the_target_grammar_is_that_of_a_run_reference(text: str, want: object) -> None:
    assert parse_target(text) == want


@pytest.mark.parametrize("text", ["run-1@", "@3", "run-1@twenty", "run-1@step-x"])
def test_a_target_that_names_no_step_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="fork target"):
        parse_target(text)


def test_a_final_checkpoint_is_reentered_in_the_loop() -> None:
    assert in_loop("save_checkpoint@end") == "save_checkpoint"
    assert in_loop("save_checkpoint") == "save_checkpoint"


def test_the_tree_lists_each_fork_under_its_parent() -> None:
    def row(run_id: str, parent: str | None = None) -> RunRow:
        return RunRow(run_id, "sl_basic", "completed", WHEN, WHEN, 1, 1, 8, parent)

    listed = [
        (row("a"), "completed", 0),
        (row("b"), "completed", 0),
        (row("a1", "a"), "completed", 0),
        (row("a1x", "a1"), "completed", 0),
        (row("b1", "b"), "completed", 0),
        (row("orphan", "gone"), "completed", 0),
        (row("a2", "a"), "completed", 0),
    ]
    tree = [(r.run_id, depth) for r, _, depth in _as_tree(listed)]
    assert tree == [
        ("a", 0),
        ("a1", 1),
        ("a1x", 2),
        ("a2", 1),
        ("b", 0),
        ("b1", 1),
        ("orphan", 0),
    ]
