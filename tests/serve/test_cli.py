"""``kitchen serve keys`` and how the other commands treat a served model, through the real
CLI in a subprocess (the log is written by the journal, as the server writes it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kitchen.serve import ids
from kitchen.serve.journal import Journal, ModelSpec
from kitchen.store import open_store
from tests.serve.conftest import base_env


def kitchen(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitchen.cli", *args],
        env=base_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    made = kitchen(tmp_path, "serve", "keys", "create", "--name", "ci")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("tml-") and len(key) > 40
    listed = kitchen(tmp_path, "serve", "keys", "list")
    (row,) = listed.stdout.splitlines()[1:]
    key_id = row.split()[0]
    assert key_id.startswith("key-") and " ci " in row and row.rstrip().endswith("-")
    assert key not in listed.stdout
    assert key not in (tmp_path / "serve" / "keys.json").read_text()
    revoked = kitchen(tmp_path, "serve", "keys", "revoke", key_id)
    assert revoked.returncode == 0 and key_id in revoked.stdout
    assert not kitchen(tmp_path, "serve", "keys", "list").stdout.splitlines()[1].endswith("-")
    missing = kitchen(tmp_path, "serve", "keys", "revoke", "key-nope")
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr


def served_run(home: Path) -> str:
    session = "sess-00000000000000aa"
    spec = ModelSpec(ids.model_id(session, 0), session, 0, "key-x", "kitchen/tiny", 2, 1)
    store = open_store(f"sqlite:///{home / 'kitchen.db'}")
    j = Journal(store, home)
    j.create_model(spec, {})
    j.record_request(spec, "optim_step", 1, j.put_input("key-x", b"{}"), 0, "ready")
    j.close()
    store.close()
    return spec.run_id


def test_resume_and_recover_leave_served_models_to_the_server(tmp_path: Path) -> None:
    run_id = served_run(tmp_path)
    resumed = kitchen(tmp_path, "resume", run_id)
    assert resumed.returncode == 2
    assert resumed.stderr.count("\n") == 1 and "`kitchen serve`" in resumed.stderr
    recovered = kitchen(tmp_path, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert f"{run_id}: skipped, `kitchen serve` owns it" in recovered.stderr
    runs = kitchen(tmp_path, "runs")
    assert run_id in runs.stdout and "served" in runs.stdout


def test_replay_verify_rehashes_request_blobs(tmp_path: Path) -> None:
    run_id = served_run(tmp_path)
    replay = kitchen(tmp_path, "replay", run_id, "--verify")
    assert replay.returncode == 0, replay.stderr
    assert "1 artifacts" in replay.stdout.splitlines()[-1]
    for blob in (tmp_path / "serve" / "owners" / "key-x" / "inputs").rglob("*"):
        if blob.is_file():
            blob.write_bytes(b"altered")
    bad = kitchen(tmp_path, "replay", run_id, "--verify")
    assert bad.returncode == 1 and "request" in bad.stderr and "sha256 mismatch" in bad.stderr
