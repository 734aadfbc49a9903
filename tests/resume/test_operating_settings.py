"""A run's identity and its operating settings across attempts.

A resume that changes only operating settings (pipelining, threads, checkpoint retention)
proceeds without ``--force``, records what changed, and ends with the same adapter; one that
changes an identity key is refused and writes nothing; a blob store that cannot be reached
invalidates nothing.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kitchen import config as kconfig
from kitchen.engine import launch
from kitchen.engine import resume_policy as policy
from kitchen.engine.registry import names
from kitchen.engine.state import Attempt, RunState
from kitchen.errors import ConfigError
from kitchen.recipes import load_recipe
from kitchen.testing.cli import make_kitchen, one_line_error
from kitchen.testing.runs import adapter_sha, crash_sl, replay_json

TEMPFAIL = 75
CRASH_AT = "stage:get_batch:after@13"  # checkpoints at steps 5 and 10 are on record
V1_DB = Path(__file__).resolve().parents[1] / "fixtures" / "v1" / "kitchen.db"


def _events(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in doc["events"] if e["type"] == kind]


# ---------------------------------------------------------------- which key is which


@pytest.mark.parametrize("recipe", names("recipes"))
def test_operating_settings_of_every_recipe(recipe: str) -> None:
    cls = load_recipe(recipe).config
    operating = kconfig.operating_keys(cls)
    assert {"pipeline", "device", "torch_threads", "keep_checkpoints", "hf_token"} <= operating
    # what the result depends on stays identity
    identity = set(cls.model_fields) - operating
    assert {"model_name", "dataset", "lora_rank", "learning_rate", "seed", "dtype"} <= identity
    assert {"device", "torch_threads"} <= kconfig.float_moving_keys(cls)
    assert "pipeline" not in kconfig.float_moving_keys(cls)


def test_every_key_added_since_v1_says_what_reproduces_a_v1_run() -> None:
    """A key the v1 fixture's runs did not record must declare its ``absent`` value, or a v1
    run resumed by this version would silently take the key's current default."""
    with sqlite3.connect(f"file:{V1_DB}?mode=ro&immutable=1", uri=True) as db:
        (payload,) = db.execute("SELECT payload FROM events WHERE type = 'RunCreated'").fetchone()
    recorded = json.loads(payload)["config"]
    recipe = load_recipe("sl_basic")
    renamed = {old: new.partition(".")[0] for old, new in recipe.renamed.items()}
    then = {renamed.get(k, k) for k in recorded}
    added = set(recipe.config.model_fields) - then
    assert added  # the check has something to check
    undeclared = sorted(added - set(kconfig.absent_values(recipe.config)))
    assert undeclared == [], f"keys added since v1 without an absent value: {undeclared}"


def test_restore_gives_a_key_added_later_its_absent_value_not_its_default() -> None:
    recipe = load_recipe("sl_basic")
    recorded = kconfig.redacted(recipe.config())
    del recorded["torch_threads"]  # as a run recorded before the key existed
    fields = recipe.config.model_fields
    saved = fields["torch_threads"].default
    try:
        fields["torch_threads"].default = 1  # a later version changes the default
        recipe.config.model_rebuild(force=True)
        assert recipe.config().torch_threads == 1
        assert kconfig.restore(recipe.config, recorded, {}).torch_threads is None
    finally:
        fields["torch_threads"].default = saved
        recipe.config.model_rebuild(force=True)


def test_restore_takes_the_last_attempts_operating_settings() -> None:
    recipe = load_recipe("sl_basic")
    recorded = kconfig.redacted(recipe.config())
    last = {"pipeline": False, "torch_threads": 1, "learning_rate": 9.0}  # not operating: ignored
    cfg: Any = kconfig.restore(recipe.config, recorded, {}, None, last)
    assert (cfg.pipeline, cfg.torch_threads, cfg.learning_rate) == (False, 1, 3e-3)
    cfg = kconfig.restore(recipe.config, recorded, {"pipeline": True}, None, last)
    assert cfg.pipeline is True


# ---------------------------------------------------------------- tolerance


def _attempt(number: int, seq: int, operating: dict[str, Any] | None, threads: str) -> Attempt:
    return Attempt(
        number,
        "w",
        "h",
        1,
        seq,
        None,
        None,
        None,
        None,
        None,
        operating,
        {"torch_threads": threads},
    )


def test_a_float_moving_change_between_attempts_is_named() -> None:
    config = {"device": "cpu", "torch_threads": None, "pipeline": True}
    same = RunState(
        run_id="r",
        config=config,
        attempts=(_attempt(1, 2, None, "2"), _attempt(2, 40, dict(config), "2")),
    )
    assert policy.float_moving_changes(same, 20, {"device", "torch_threads"}) == []
    changed = RunState(
        run_id="r",
        config=config,
        attempts=(
            _attempt(1, 2, None, "2"),
            _attempt(2, 40, {**config, "pipeline": False, "torch_threads": 1}, "1"),
        ),
    )
    assert policy.float_moving_changes(changed, 20, {"device", "torch_threads"}) == [
        "torch_threads None -> 1",
        "torch_threads 2 -> 1",
    ]
    assert policy.float_moving_changes(changed, 45, {"device", "torch_threads"}) == []
    assert policy.attempt_changes(changed) == [
        (2, ["pipeline true -> false", "torch_threads null -> 1", "backend torch_threads 2 -> 1"])
    ]


# ---------------------------------------------------------------- where blobs live


def test_a_resume_pointed_at_another_blob_store_is_refused() -> None:
    state = SimpleNamespace(blob_store={"adapter": "local"})
    launch._check_blob_store("r", state, {"adapter": "local"})
    with pytest.raises(ConfigError) as info:
        launch._check_blob_store("r", state, {"adapter": "s3", "bucket": "other"})
    assert str(info.value) == (
        "run 'r' keeps its blobs in the 'local' blob store (its RunCreated); this resume points "
        "at the 's3' blob store (bucket=other): resume without that setting, or move the blobs "
        "first"
    )
    # the recorded store is used unless the resume names one
    assert launch._recorded_blob_store(state, {"pipeline": False}) == {
        "adapters.blobs": "local",
        "pipeline": False,
    }
    asked = {"adapters.blobs": "s3"}
    assert launch._recorded_blob_store(state, asked) == asked


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_operating_settings_change_at_a_resume_identity_does_not(
    tmp_path: Path, reference: str
) -> None:
    home = tmp_path / "home"
    kitchen = make_kitchen(home)
    crash_sl(home, "ops", CRASH_AT)
    before = replay_json(kitchen, "ops")

    refused = kitchen("resume", "ops", "learning_rate=0.1")
    line = one_line_error(refused)
    assert refused.code == 2
    assert "created with a different config" in line and "--force" in line
    assert len(replay_json(kitchen, "ops")["events"]) == len(before["events"])  # nothing written

    r = kitchen("resume", "ops", "pipeline=false", "torch_threads=1", "keep_checkpoints=2")
    assert r.code == 0, r.stderr[-800:]
    assert adapter_sha(home, "ops") == reference

    doc = replay_json(kitchen, "ops")
    first, second = _events(doc, "AttemptStarted")
    assert (first["operating"]["pipeline"], first["operating"]["torch_threads"]) == (True, None)
    assert second["operating"] == {
        "device": "cpu",
        "gradient_checkpointing": False,
        "hf_token": None,
        "keep_checkpoints": 2,
        "loggers": [],
        "max_tokens_per_microbatch": 16384,
        "parallelism": "replicate",
        "pipeline": False,
        "torch_threads": 1,
    }
    assert second["backend"]["torch_threads"] == "1"
    (resumed,) = _events(doc, "RunResumed")
    assert resumed["forced"] is False
    assert {
        "operating keep_checkpoints 3 -> 2",
        "operating pipeline true -> false",
        "operating torch_threads null -> 1",
    } <= set(resumed["differences"])
    # config_hash covers identity only: the same hash before and after the change
    (created,) = _events(doc, "RunCreated")
    assert resumed["config_hash"] == created["config_hash"]
    assert _events(doc, "DeterminismMismatch") == []

    shown = kitchen("show", "ops")
    assert shown.code == 0
    assert (
        "  attempt 2 changed: keep_checkpoints 3 -> 2; pipeline true -> false; "
        "torch_threads null -> 1" in shown.stdout
    )
    assert re.search(r"^  pipeline +\* true$", shown.stdout, re.M)  # marked operating
    assert re.search(r"^  learning_rate +0\.003$", shown.stdout, re.M)


def _mount_bind(source: Path, target: Path) -> None:
    proc = subprocess.run(
        ["mount", "--bind", str(source), str(target)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root): {proc.stderr.strip()}")


@pytest.mark.slow
def test_an_unreachable_blob_store_invalidates_nothing(tmp_path: Path, reference: str) -> None:
    """KITCHEN_HOME on a mount that is gone at the resume (the database elsewhere): the resume
    ends as a fault, exit 75, with nothing written; once the mount is back it completes."""
    disk, home, db = tmp_path / "disk", tmp_path / "home", tmp_path / "db"
    for folder in (disk, home, db):
        folder.mkdir()
    url = f"sqlite:///{db / 'kitchen.db'}"
    _mount_bind(disk, home)
    try:
        crash_sl(home, "away", CRASH_AT, env={"KITCHEN_DB_URL": url})
    finally:
        subprocess.run(["umount", str(home)], check=True)
    kitchen = make_kitchen(home, url)
    before = replay_json(kitchen, "away")["events"]

    r = kitchen("resume", "away")
    assert r.code == TEMPFAIL, r.stderr[-800:]
    assert f"blob folder {home / 'away'} is not there" in r.stderr
    assert replay_json(kitchen, "away")["events"] == before  # no CheckpointInvalidated

    _mount_bind(disk, home)
    try:
        r = kitchen("resume", "away")
        assert r.code == 0, r.stderr[-800:]
        doc = replay_json(kitchen, "away")
        assert _events(doc, "CheckpointInvalidated") == []
        assert [p["from_step"] for p in _events(doc, "RunResumed")] == [10]
        assert adapter_sha(home, "away") == reference
    finally:
        subprocess.run(["umount", str(home)], check=True)
