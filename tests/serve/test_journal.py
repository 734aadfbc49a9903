"""The served models' log: what a rebuild starts from and re-applies, read back from a real
SQLite store (no model is loaded: these are the journal's own rules)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from kitchen.serve import ids
from kitchen.serve.journal import Journal, ModelSpec
from kitchen.store import canonical_json, open_store

SESSION = "sess-0123456789abcdef"


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    store = open_store(f"sqlite:///{tmp_path / 'kitchen.db'}")
    j = Journal(store, tmp_path)
    yield j
    j.close()
    store.close()


def spec() -> ModelSpec:
    return ModelSpec(ids.model_id(SESSION, 0), SESSION, 0, "key-1", "kitchen/tiny", 4, 7)


def request(j: Journal, s: ModelSpec, kind: str, seq_id: int, step: int) -> int:
    ref = j.put_input(s.owner, f"{kind}:{seq_id}".encode())
    return j.record_request(s, kind, seq_id, ref, step, "ready")


def checkpoint(j: Journal, s: ModelSpec, step: int, request_seq: int) -> None:
    key = f"{s.run_dir}/checkpoints/step-{step}"
    ref = j.blobs.write_dir(key, lambda tmp: (tmp / "state.json").write_text(str(step)))
    j.record_checkpoint(s, f"step-{step}", step, ref, request_seq)


def test_rebuild_starts_at_the_newest_checkpoint(journal: Journal) -> None:
    s = spec()
    journal.create_model(s, {"python": "3"})
    seqs = [
        request(journal, s, k, i + 1, i // 2)
        for i, k in enumerate(["forward_backward", "optim_step"] * 3)
    ]
    checkpoint(journal, s, 2, seqs[3])  # after the second optim_step
    request(journal, s, "save_weights", 7, 3)
    plan = journal.plan(s.run_id)
    assert plan.checkpoint is not None and plan.checkpoint.step == 2
    assert [r.seq_id for r in plan.replay] == [5, 6, 7]
    assert [r.kind for r in plan.replay] == ["forward_backward", "optim_step", "save_weights"]
    assert plan.next_seq_id == 8
    assert plan.attempt == 2
    assert plan.spec == s


def test_a_corrupt_checkpoint_is_passed_over(journal: Journal, tmp_path: Path) -> None:
    s = spec()
    journal.create_model(s, {})
    a = request(journal, s, "optim_step", 1, 0)
    checkpoint(journal, s, 1, a)
    b = request(journal, s, "optim_step", 2, 1)
    checkpoint(journal, s, 2, b)
    (tmp_path / s.run_dir / "checkpoints" / "step-2" / "state.json").write_text("tampered")
    plan = journal.plan(s.run_id)
    assert plan.checkpoint is not None and plan.checkpoint.step == 1
    assert [c.step for c in plan.invalid] == [2]
    assert [r.seq_id for r in plan.replay] == [2]
    journal.begin_attempt(plan)
    assert journal.plan(s.run_id).invalid == []  # recorded as invalidated, not checked again


def test_run_created_is_hashed_as_the_store_canonicalises_it(journal: Journal) -> None:
    """The journal no longer imports the store: the config hash it records is still the
    sha256 of the store's canonical JSON of the config, as in every log written before."""
    source = {"path": "tinker://m/weights/a", "uri": "u", "sha256": "0" * 64, "bytes": 3}
    s = replace(spec(), base_model="kitchen/tïny", source={**source, "optimizer": True})
    journal.create_model(s, {"python": "3"})
    created, started = journal.log.read(s.run_id)
    assert (created.type, started.type) == ("RunCreated", "AttemptStarted")
    config = created.payload["config"]
    assert config == s.config()
    digest = hashlib.sha256(canonical_json(config).encode()).hexdigest()
    assert created.payload["config_hash"] == digest
    assert created.payload["workflow"] == created.payload["recipe"] == "served"


def test_ids_and_paths(tmp_path: Path) -> None:
    from kitchen.serve.errors import ApiError

    m = ids.model_id(SESSION, 3)
    assert ids.parse_model_id(m) == (SESSION, 3)
    assert ids.run_id_of(m) == f"{SESSION}-train-3"
    tp = ids.parse_tinker_path(f"tinker://{m}/sampler_weights/w.1")
    assert (tp.kind, tp.name) == ("sampler_weights", "w.1")
    for bad in [
        "tinker://x/weights/a",
        f"tinker://{m}/weights/..",
        f"tinker://{m}/other/a",
        f"tinker://{m}/weights/a/b",
        "s3://x",
    ]:
        with pytest.raises(ApiError):
            ids.parse_tinker_path(bad)
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "link").symlink_to(tmp_path)
    with pytest.raises(ApiError):
        ids.owner_path(tmp_path / "owner", "link", "x")
    assert (
        ids.owner_path(tmp_path / "owner", "a", "b") == (tmp_path / "owner" / "a" / "b").resolve()
    )
