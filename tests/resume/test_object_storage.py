"""Blobs in a bucket (KITCHEN_BLOBS_URL=s3://…) on a local S3 server (moto), through the real
``kitchen`` CLI: a run killed on one machine resumes on another that shares only the database
and the bucket, and ends with the adapter of an uninterrupted run; a store that cannot be used
is one line before anything is written, and one that stops answering, during a run or at a
resume, is a fault (exit 75) that leaves no checkpoint half-written on record and invalidates
none."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitchen.adapters.fsspec_blobs import FsspecBlobStore
from kitchen.testing.cli import Result, make_kitchen, one_line_error
from kitchen.testing.runs import SMALL_SL_CONFIG
from kitchen.testing.s3 import MotoS3, StrictMotoS3, free_port


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[MotoS3]:
    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture
def bucket(moto_s3: MotoS3) -> str:
    name = f"kitchen-{uuid.uuid4().hex[:12]}"
    moto_s3.make_bucket(name)
    return name


def _events(db: Path) -> list[tuple[str, dict[str, object]]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        rows = con.execute("select type, payload from events order by seq").fetchall()
    return [(t, json.loads(p)) for t, p in rows]


def _env(home: Path, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITCHEN_", "OTEL_"))}
    return {**env, "KITCHEN_HOME": str(home), "KITCHEN_DB_URL": db_url}


def _stopped_at(point: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """``kitchen ARGS`` in the background, returned once it has stopped itself at ``point``
    (``KITCHEN_FAULT=point=SIGSTOP``): the test breaks the storage under it, then lets it go."""
    proc = subprocess.Popen(
        [shutil.which("kitchen") or "kitchen", *args],
        env={**env, "KITCHEN_FAULT": f"{point}=SIGSTOP"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not _stopped(proc.pid):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"kitchen never stopped at {point}: {proc.communicate()[1]}")
        time.sleep(0.02)
    return proc


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "T"


def _carry_on(proc: subprocess.Popen[str]) -> Result:
    os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=300)
    return Result(proc.returncode, out, err)


def _final_adapter_sha(url: str, run_id: str, cache: Path, env: dict[str, str]) -> str:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        store = FsspecBlobStore(url, cache)
        folder = store.local_path(f"{run_id}/final")
    return hashlib.sha256((folder / "adapter_model.safetensors").read_bytes()).hexdigest()


@pytest.mark.slow
def test_killed_run_resumes_on_another_machine_from_the_bucket(
    tmp_path: Path, moto_s3: MotoS3, bucket: str, reference: str
) -> None:
    db = tmp_path / "db" / "kitchen.db"
    db.parent.mkdir()
    db_url = f"sqlite:///{db}"
    url = f"s3://{bucket}/runs"
    env = moto_s3.env()
    node_a = make_kitchen(tmp_path / "node-a", db_url)
    run_id = "on-s3"

    # Node A: step 10's checkpoint blob is in the bucket, its record is not: killed.
    r = node_a(
        "run",
        "sl_basic",
        *SMALL_SL_CONFIG,
        "--run-id",
        run_id,
        extra_env={**env, "KITCHEN_BLOBS_URL": url, "KITCHEN_FAULT": "checkpoint:after_blob@2"},
    )
    assert r.code == -9, r.stderr[-800:]
    created = next(p for t, p in _events(db) if t == "RunCreated")
    assert created["blob_store"] == {"adapter": "fsspec", "url": url}
    assert not (tmp_path / "node-a" / run_id / "checkpoints").exists()

    # Node X resumes from step 5; once step 10's checkpoint is in the bucket, the endpoint
    # stops answering: step 15's checkpoint cannot be written, and the attempt ends as a fault.
    proc = _stopped_at(
        "checkpoint:after_blob@1",
        ["resume", run_id],
        {**_env(tmp_path / "node-x", db_url), **env},
    )
    moto_s3.stop()
    try:
        r = _carry_on(proc)
        assert r.code == 75, r
        ended = [p for t, p in _events(db) if t == "AttemptInterrupted"][-1]
        assert ended["fault"] == "blob_store_unavailable", ended
        write = f"blob store {url}: checking blob key '{run_id}/checkpoints/step-000015' failed"
        assert str(ended["reason"]).startswith(write), ended
        saved = [p["step"] for t, p in _events(db) if t == "CheckpointSaved"]
        assert saved == [5, 10]  # none half-written on record

        # A resume while it is still down is a fault too, and judges no checkpoint.
        r = make_kitchen(tmp_path / "node-y", db_url)("resume", run_id, extra_env=env)
    finally:
        moto_s3.start()
    assert r.code == 75, r
    line = one_line_error(r)
    assert f"blob store {url} cannot be reached" in line, line
    assert not any(t == "CheckpointInvalidated" for t, _ in _events(db))

    # A resume pointed at another bucket is refused, in one line.
    r = make_kitchen(tmp_path / "node-x", db_url)(
        "resume", run_id, extra_env={**env, "KITCHEN_BLOBS_URL": f"s3://{bucket}/elsewhere"}
    )
    assert r.code == 2, r
    assert f"keeps its blobs in the 'fsspec' blob store (url={url})" in one_line_error(r)

    # Node B: an empty home, the same database and bucket, and no KITCHEN_BLOBS_URL.
    node_b = tmp_path / "node-b"
    r = make_kitchen(node_b, db_url)("resume", run_id, extra_env=env)
    assert r.code == 0, r.stderr[-800:]
    assert not any(t == "CheckpointInvalidated" for t, _ in _events(db))
    resumed = [p for t, p in _events(db) if t == "RunResumed"]
    assert [p["from_step"] for p in resumed] == [5, 10]
    assert _final_adapter_sha(url, run_id, tmp_path / "cache", env) == reference

    # Readers on a third machine find the run's blobs in the bucket: replay verifies them,
    # show names the final adapter's place.
    node_c = make_kitchen(tmp_path / "node-c", db_url)
    r = node_c("replay", run_id, "--verify", extra_env=env)
    assert r.code == 0, r.stderr[-800:]
    r = node_c("show", run_id, "--json", extra_env=env)
    assert r.code == 0, r.stderr[-800:]
    assert json.loads(r.stdout)["paths"]["final_adapter"] == f"{url}/{run_id}/final"


def _refused(tmp_path: Path, env: dict[str, str], code: int) -> str:
    db = tmp_path / "db" / "kitchen.db"
    db.parent.mkdir(exist_ok=True)
    home = tmp_path / "home"
    r = make_kitchen(home, f"sqlite:///{db}")(
        "run", "sl_basic", *SMALL_SL_CONFIG, "--run-id", "refused", extra_env=env
    )
    line = one_line_error(r)
    assert r.code == code, r
    assert _events(db) == []
    assert not (home / "refused").exists()
    return line


def test_an_unreachable_endpoint_is_one_line_before_anything_is_written(
    tmp_path: Path, moto_s3: MotoS3
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    env = moto_s3.env(AWS_ENDPOINT_URL=down, KITCHEN_BLOBS_URL="s3://bucket/runs")
    line = _refused(tmp_path, env, 75)  # an outage, perhaps: a fault to try again after
    assert line.startswith("kitchen: error: KITCHEN_BLOBS_URL=s3://bucket/runs cannot be reached")
    assert down in line


def test_a_missing_bucket_is_one_line_before_anything_is_written(
    tmp_path: Path, moto_s3: MotoS3
) -> None:
    env = moto_s3.env(KITCHEN_BLOBS_URL="s3://no-such-bucket/runs")
    assert _refused(tmp_path, env, 2) == (
        "kitchen: error: KITCHEN_BLOBS_URL=s3://no-such-bucket/runs: bucket 'no-such-bucket' "
        "does not exist; create it, or set KITCHEN_BLOBS_URL to a bucket that exists"
    )


def test_refused_credentials_are_one_line_before_anything_is_written(tmp_path: Path) -> None:
    strict = StrictMotoS3().start()
    try:
        env = strict.env(KITCHEN_BLOBS_URL="s3://bucket/runs")
        line = _refused(tmp_path, env, 2)
    finally:
        strict.stop()
    start = "kitchen: error: KITCHEN_BLOBS_URL=s3://bucket/runs: access to 'bucket' refused"
    assert line.startswith(start), line
    assert "set credentials that may read and write it" in line
