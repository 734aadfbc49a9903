"""Group commit: the events of a burst of requests of many served models are appended in one
transaction, on a real SQLite file and a real Postgres; each caller learns only its own
outcome (no model is loaded: these are the journal's rules)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from kitchen.errors import ConcurrencyConflict
from kitchen.log_records import NewEvent
from kitchen.serve import ids
from kitchen.serve.commit import GroupCommit
from kitchen.serve.journal import Journal, ModelSpec
from kitchen.store import EventStore, open_store

MODELS = 6


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kitchen.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    s = open_store(url)
    yield s
    s.close()


def specs(n: int) -> list[ModelSpec]:
    out = []
    for i in range(n):
        session = f"sess-{i:016x}"
        out.append(ModelSpec(ids.model_id(session, 0), session, 0, "key-1", "kitchen/tiny", 4, i))
    return out


class HeldLog:
    """The real store; once armed, its next append is held until released, so the requests
    sent meanwhile queue up behind it as a burst does behind a slow commit."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.entered = threading.Event()
        self.release = threading.Event()
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def append(self, run_id: str, events: Any, expected_seq: int) -> Any:
        if self.armed:
            self.armed = False
            self.entered.set()
            assert self.release.wait(30)
        return self.store.append(run_id, events, expected_seq)


@pytest.fixture
def held(store: EventStore, tmp_path: Path) -> Iterator[tuple[Journal, HeldLog]]:
    journal = Journal(store, tmp_path)
    log = HeldLog(store)
    journal._commits = GroupCommit(log)
    yield journal, log
    log.release.set()
    journal.close()


def burst(journal: Journal, log: HeldLog, models: list[ModelSpec]) -> list[Future[Any]]:
    """One request of models[0] whose append is held, then one request of every model."""
    log.armed = True

    def send(s: ModelSpec, seq_id: int, body: bytes) -> Future[Any]:
        ref = journal.put_input(s.owner, body)
        return journal.submit_request(s, "forward_backward", seq_id, ref, 0, "gradients")

    first = send(models[0], 1, b"first")
    assert log.entered.wait(30)  # the committer is appending the first request
    rest = [send(s, 2 if i == 0 else 1, b"%d" % i) for i, s in enumerate(models)]
    log.release.set()
    return [first, *rest]


def test_a_burst_is_committed_as_one_group(
    store: EventStore, held: tuple[Journal, HeldLog]
) -> None:
    journal, log = held
    models = specs(MODELS)
    for s in models:
        journal.create_model(s, {"python": "3"})
    stored = [f.result(30) for f in burst(journal, log, models)]
    commits = journal._commits
    assert commits.groups == MODELS + 2  # the creations, the held request, then the burst
    assert commits.largest == MODELS
    # each caller got its own event; model 0 got two, in the order they were sent
    assert [e[0].run_id for e in stored] == [models[0].run_id] + [s.run_id for s in models]
    assert stored[1][0].seq == stored[0][0].seq + 1
    for events in stored:
        (read,) = store.read(events[0].run_id, events[0].seq - 1, events[0].seq)
        assert read.hash == events[0].hash
    plan = journal.plan(models[3].run_id)
    assert [(r.seq_id, r.kind) for r in plan.replay] == [(1, "forward_backward")]
    assert journal.read_input(plan.replay[0]) == b"3"  # the blob is there and verifies
    assert [r.seq_id for r in journal.plan(models[0].run_id).replay] == [1, 2]


def test_a_conflict_fails_only_its_own_model(
    store: EventStore, held: tuple[Journal, HeldLog]
) -> None:
    journal, log = held
    models = specs(3)
    for s in models:
        journal.create_model(s, {"python": "3"})
    # another writer appends to model 1 behind the journal's back: the journal's tip is stale
    store.append(models[1].run_id, [NewEvent("Intruder", {})], store.last_seq(models[1].run_id))
    futures = burst(journal, log, models)
    assert futures[0].result(30) and futures[1].result(30)
    with pytest.raises(ConcurrencyConflict):
        futures[2].result(30)
    assert futures[3].result(30)[0].payload["stage"] == "forward_backward"
    assert [e.type for e in store.read(models[1].run_id)][-1] == "Intruder"
    # another writer has model 1: its requests keep being refused, the others go on
    ref = journal.put_input(models[1].owner, b"1")
    again = journal.submit_request(models[1], "forward_backward", 1, ref, 0, "ready")
    with pytest.raises(ConcurrencyConflict):
        again.result(30)
    ref = journal.put_input(models[2].owner, b"2")
    assert journal.submit_request(models[2], "optim_step", 2, ref, 0, "ready").result(30)


def test_append_many_is_all_or_nothing(store: EventStore) -> None:
    a, b = "run-a", "run-b"
    store.append(a, [NewEvent("RunCreated", {"n": 1})], 0)
    store.append(b, [NewEvent("RunCreated", {"n": 2})], 0)
    out = store.append_many([(a, [NewEvent("X", {"i": 1})], 1), (b, [NewEvent("X", {"i": 2})], 1)])
    assert [[e.seq for e in part] for part in out] == [[2], [2]]
    assert store.verify(a).ok and store.verify(b).ok
    with pytest.raises(ConcurrencyConflict):  # b's seq 2 is taken: a's event is not written
        store.append_many([(a, [NewEvent("Y", {})], 2), (b, [NewEvent("Y", {})], 1)])
    assert store.last_seq(a) == 2 and store.last_seq(b) == 2
    with pytest.raises(ValueError, match="more than once"):
        store.append_many([(a, [NewEvent("Y", {})], 2), (a, [NewEvent("Y", {})], 3)])
