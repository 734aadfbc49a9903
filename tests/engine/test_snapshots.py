"""Snapshots of the fold: the same state with one as without, ignored when damaged or stale.

Every fixture log (the golden histories and the runs of the v1 fixture database) is folded
whole and from a snapshot taken at each of its seqs; the two must be equal, field for field.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kitchen.engine import events as ev
from kitchen.engine import snapshots
from kitchen.engine.state import (
    ActivityRecord,
    ArtifactRecord,
    Attempt,
    Checkpoint,
    Mismatch,
    Recorded,
    RunState,
    fold,
)
from kitchen.store import EventStore, open_store

TESTS = Path(__file__).resolve().parents[1]
GOLDEN = sorted((TESTS / "engine" / "golden").glob("*.json"))
V1_DB = TESTS / "fixtures" / "v1" / "kitchen.db"
V1_RUNS = ("v1-completed", "v1-crashed", "v1-resumed")
T0 = datetime(2025, 11, 25, 1, 2, 3, 456789, tzinfo=UTC)


def _golden(path: Path) -> tuple[str, list[Recorded]]:
    """A golden history, each event given a time (the files have none) so times are folded."""
    history = json.loads(path.read_text())
    return history["run_id"], [
        Recorded(
            e["seq"],
            T0 + timedelta(seconds=e["seq"], microseconds=e["seq"]),
            ev.decode(e["type"], e["schema_version"], e["payload"]),
        )
        for e in history["events"]
    ]


@pytest.fixture
def v1_store(tmp_path: Path) -> Iterator[EventStore]:
    """A copy of the v1 fixture's database (the committed file is never opened)."""
    copy = tmp_path / "kitchen.db"
    shutil.copy(V1_DB, copy)
    with open_store(f"sqlite:///{copy}") as store:
        yield store


def _logs(store: EventStore) -> list[tuple[str, list[Recorded]]]:
    logs = [_golden(path) for path in GOLDEN]
    logs += [(run, snapshots.recorded(store.read(run))) for run in V1_RUNS]
    return logs


def test_every_fixture_log_folds_to_the_same_state_from_a_snapshot_at_any_seq(
    v1_store: EventStore,
) -> None:
    logs = _logs(v1_store)
    assert len(logs) == len(GOLDEN) + 3 and all(len(recs) >= 8 for _, recs in logs)
    for run_id, records in logs:
        whole = fold(run_id, records)
        for k in range(1, len(records) + 1):
            at_k = fold(run_id, records[:k])
            restored = snapshots.decode(snapshots.encode(at_k))
            assert restored == at_k, (run_id, k)
            assert fold(run_id, records[k:], restored) == whole, (run_id, k)


def test_fixture_runs_load_the_same_through_the_store(v1_store: EventStore) -> None:
    for run_id in V1_RUNS:
        records = snapshots.recorded(v1_store.read(run_id))
        whole = fold(run_id, records)
        without = snapshots.load(v1_store, run_id)
        assert (without.from_seq, without.state) == (0, whole)
        for k in (1, len(records) // 2, len(records) - 1):
            snapshots.save(v1_store, fold(run_id, records[:k]))
            loaded = snapshots.load(v1_store, run_id)
            assert (loaded.from_seq, len(loaded.rows)) == (k, len(records) - k)
            assert loaded.state == whole
        # --at: the nearest snapshot at or before the seq, then the events up to it
        middle = len(records) // 2
        at = snapshots.load(v1_store, run_id, upto_seq=middle + 3)
        assert at.from_seq == middle
        assert at.state == fold(run_id, records[: middle + 3])


def test_the_codec_keeps_every_field() -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    ref = ev.LineageRef(role="parent", source="run:a", kind="run", run_id="a", sha256="ab" * 32)
    state = RunState(
        run_id="all-fields",
        last_seq=42,
        recipe="sl_basic",
        workflow="supervised",
        config={"lr": 1e-4, "layers": [1, 2], "nested": {"k": None}},
        config_hash="c" * 64,
        seed=7,
        versions={"torch": "2.13.0"},
        data_fingerprint="d" * 64,
        run_dir="all-fields",
        lineage=(ref,),
        blob_store={"adapter": "local"},
        fork=ev.ForkPoint(
            run_id="parent",
            step=6,
            from_step=4,
            reexecuted=2,
            sha256="e" * 64,
            bytes=123,
            overrides={"learning_rate": 0.001},
            artifacts=[ev.Artifact(kind="reference_logprobs", uri="x/r", sha256="f" * 64, bytes=9)],
        ),
        created_at=when,
        updated_at=when + timedelta(seconds=1),
        status="failed",
        machine_state="failed",
        attempts=(
            Attempt(1, "w:1", "h", 10, 2, when, None, "t" * 32, "s" * 16, "interrupted"),
            Attempt(
                2,
                "w:2",
                "h",
                11,
                20,
                None,
                9,
                None,
                None,
                None,
                {"pipeline": False, "torch_threads": 1},
                {"device": "cpu", "torch_threads": "1"},
            ),
        ),
        step=5,
        epoch=1,
        stage="train",
        step_metrics={0: {"nll": 3.0, "n": 8}, 2: {}, 3: {"acc": 1}, 4: {"nll": 1.5, "n": 8}},
        step_metric_seqs={0: 12, 2: 20, 3: 25, 4: 30},
        superseded_metrics={1: (14, {"nll": 2.75})},
        eval_metrics={0: {"test/nll": 3.5}},
        checkpoints=(
            Checkpoint(9, "step-1", 1, 0, "u/1", "a" * 64, 10, "save", {"epoch": 0}, False),
            Checkpoint(
                25,
                "step-3",
                3,
                1,
                "tinker://x",
                "b" * 64,
                0,
                "save",
                {},
                True,
                "deleted",
                2,
                "remote",
            ),
        ),
        superseded=((10, 19),),
        optim_steps=(0, 1, 2, 5, 3, 3),
        total_steps=6,
        artifacts=(ArtifactRecord(31, "rollouts", "u/r", "e" * 64, 5, 2, "local", True),),
        mismatches=(Mismatch(22, 1, "nll", 2.75, 2.5),),
        activities={
            "rl/0": ActivityRecord(32, "rl/0", "env_step", 2, 1, "started"),
            "rl/1": ActivityRecord(
                33, "rl/1", "env_step", 2, 2, "completed", None, "u/a", "f" * 64, 9, True
            ),
            "rl/2": ActivityRecord(34, "rl/2", "judge", None, 2, "completed", {"score": 0.5}),
        },
        final_metrics={"nll": 1.25},
        adapter_uri="all-fields/final",
        error=("ValueError", "bad batch"),
        cancel_reason="asked",
        fault=("disk_full", "no space left writing checkpoints"),
    )
    empty = RunState(run_id="x")
    assert [
        f.name for f in fields(RunState) if getattr(state, f.name) == getattr(empty, f.name)
    ] == []
    assert snapshots.decode(snapshots.encode(state)) == state


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", '{"format": 99}', '{"format": 1, "run_id": "r"}', '{"format": 1}'],
)
def test_what_is_not_a_snapshot_does_not_decode(text: str) -> None:
    with pytest.raises(snapshots.SnapshotUnreadable):
        snapshots.decode(text)


def _snapshot_rows(store: EventStore) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT seq, version FROM snapshots"))]


def test_a_damaged_snapshot_is_ignored(v1_store: EventStore) -> None:
    run_id = "v1-resumed"
    records = snapshots.recorded(v1_store.read(run_id))
    snapshots.save(v1_store, fold(run_id, records[:50]))
    snapshots.save(v1_store, fold(run_id, records[:100]))
    with v1_store.engine.begin() as conn:  # one byte more: the seal no longer fits
        conn.execute(sa.text("UPDATE snapshots SET state = state || ' ' WHERE seq = 100"))
    loaded = snapshots.load(v1_store, run_id)
    assert loaded.from_seq == 50  # the older one, which verifies
    assert loaded.state == fold(run_id, records)
    with v1_store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE snapshots SET sha256 = :z WHERE seq = 50"), {"z": "0" * 64})
    loaded = snapshots.load(v1_store, run_id)
    assert (loaded.from_seq, loaded.state) == (0, fold(run_id, records))


def test_a_snapshot_of_another_fold_version_is_ignored_and_replaced(v1_store: EventStore) -> None:
    run_id = "v1-completed"
    records = snapshots.recorded(v1_store.read(run_id))
    wrong = fold(run_id, records[:40])
    stale = "0" * 64  # another fold's code wrote it: its state may mean something else
    v1_store.write_snapshot(run_id, 90, stale, snapshots.encode(wrong))
    loaded = snapshots.load(v1_store, run_id)
    assert (loaded.from_seq, loaded.state) == (0, fold(run_id, records))
    snapshots.save(v1_store, fold(run_id, records[:80]))
    assert _snapshot_rows(v1_store) == [(80, snapshots.fold_version())]


def test_a_sealed_snapshot_that_does_not_decode_is_ignored(v1_store: EventStore) -> None:
    run_id = "v1-crashed"
    records = snapshots.recorded(v1_store.read(run_id))
    snapshots.save(v1_store, fold(run_id, records[:30]))
    v1_store.write_snapshot(run_id, 60, snapshots.fold_version(), '{"format": 1}', keep=5)
    at_61 = fold(run_id, records[:61])
    v1_store.write_snapshot(run_id, 65, snapshots.fold_version(), snapshots.encode(at_61), keep=5)
    loaded = snapshots.load(v1_store, run_id)  # 65 holds seq 61's state, 60 is no state: 30
    assert (loaded.from_seq, loaded.state) == (30, fold(run_id, records))


def test_fold_version_follows_the_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "kitchen_fold_probe.py"
    module.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(snapshots, "FOLD_MODULES", (*snapshots.FOLD_MODULES, "kitchen_fold_probe"))
    snapshots.fold_version.cache_clear()
    try:
        before = snapshots.fold_version()
        module.write_text("X = 2\n")
        snapshots.fold_version.cache_clear()
        after = snapshots.fold_version()
    finally:
        sys.modules.pop("kitchen_fold_probe", None)
        monkeypatch.undo()
        snapshots.fold_version.cache_clear()
    assert before != after
    assert len(after) == 64 and snapshots.fold_version() not in (before, after)


def test_policy() -> None:
    policy = snapshots.Policy(every=100)
    assert [policy.due(n, False) for n in (0, 1, 99, 100, 250)] == [False, False, False, True, True]
    # the end of an attempt: a tenth of ``every`` is enough
    assert [policy.due(n, True) for n in (0, 9, 10, 99)] == [False, False, True, True]
    off = snapshots.Policy(every=0)
    assert not off.due(10**6, False) and not off.due(10**6, True)
    assert snapshots.Policy(every=5).due(1, True)  # at least one event


def test_every_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from kitchen.errors import ConfigError

    monkeypatch.delenv("KITCHEN_SNAPSHOT_EVERY", raising=False)
    assert snapshots.every_from_env() == 10_000
    monkeypatch.setenv("KITCHEN_SNAPSHOT_EVERY", "250")
    assert snapshots.every_from_env() == 250
    monkeypatch.setenv("KITCHEN_SNAPSHOT_EVERY", "0")
    assert snapshots.every_from_env() == 0
    for bad in ("-1", "many"):
        monkeypatch.setenv("KITCHEN_SNAPSHOT_EVERY", bad)
        with pytest.raises(ConfigError, match="KITCHEN_SNAPSHOT_EVERY") as info:
            snapshots.every_from_env()
        assert "\n" not in str(info.value)
