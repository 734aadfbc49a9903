"""``kitchen serve`` on a disk that fills up between two requests, then gets room again.

KITCHEN_HOME (the request blobs and kitchen.db) is a tmpfs. After the client's first step the
test fills it; the next request cannot be put on record, so the server answers 503 with
``Retry-After`` (never a request id for something not recorded), and the unmodified tinker SDK
sends it again, and again. Once the tmpfs is enlarged the retry is recorded and run, and the
client ends with the same losses and gradient norms as the same steps run in-process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.disk.realfs import Tmpfs
from tests.serve.conftest import Server, base_env, free_port

pytestmark = pytest.mark.slow
MakeFs = Callable[..., Tmpfs]
CLIENT = Path(__file__).with_name("serve_client.py")
REQUESTS = ("forward_backward", "optim_step")


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _requests_on_record(home: Path) -> list[tuple[str, int]]:
    from kitchen.store import open_store

    store = open_store(f"sqlite:///{home / 'kitchen.db'}")
    try:
        (run,) = [r.run_id for r in store.list_runs(recipe="served")]
        return [
            (e.payload["stage"], int(e.payload["outputs"]["seq_id"]))
            for e in store.read(run)
            if e.type == "StageCompleted" and e.payload["stage"] in REQUESTS
        ]
    finally:
        store.close()


def test_a_request_the_server_cannot_record_is_retried_until_there_is_room(
    tmp_path: Path, tmpfs: MakeFs
) -> None:
    from kitchen.serve import keys

    fs = tmpfs("home", "32m")
    home = fs.path
    key, _ = keys.create(home / "serve", "test")
    server = Server(home, free_port(), every=100)
    log = tmp_path / "server.log"  # beside the tmpfs: the server's own output must not fill
    with open(log, "wb") as fh:
        server._popen(base_env(home), fh)
    with open(tmp_path / "ref.log", "wb") as ref_log:
        reference = subprocess.Popen(  # the same two steps in-process, meanwhile
            [sys.executable, str(CLIENT), "inprocess", str(tmp_path / "ref.json")],
            env=base_env(tmp_path),
            stdout=ref_log,
            stderr=subprocess.STDOUT,
        )
    ready, go, out = tmp_path / "ready", tmp_path / "go", tmp_path / "served.json"
    env = {**base_env(tmp_path), "TINKER_BASE_URL": server.url, "TINKER_API_KEY": key}
    try:
        server.wait_up()
        with open(tmp_path / "client.log", "wb") as client_log:
            client = subprocess.Popen(
                [sys.executable, str(CLIENT), "served", str(out), str(ready), str(go)],
                env=env,
                stdout=client_log,
                stderr=subprocess.STDOUT,
            )
        _wait_for(lambda: ready.exists() or client.poll() is not None, "the first step")
        assert client.poll() is None, (tmp_path / "client.log").read_text()[-3000:]
        before = _requests_on_record(home)
        assert [kind for kind, _ in before] == list(REQUESTS)

        fs.fill()
        go.write_text("go")
        _wait_for(lambda: "answered 503" in log.read_text(), "a 503 from the full disk")
        assert _requests_on_record(home) == before  # not recorded, so never acknowledged
        assert client.poll() is None

        fs.resize("64m")
        assert client.wait(timeout=300) == 0, (tmp_path / "client.log").read_text()[-3000:]
        assert reference.wait(timeout=300) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    finally:
        server.stop()
        if reference.poll() is None:
            reference.kill()
            reference.wait()
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    line = next(ln for ln in text.splitlines() if "answered 503" in ln)
    assert f"cannot write blob {home / 'serve' / 'owners'}" in line, line
    assert "No space left on device" in line, line

    served = json.loads(out.read_text())
    expected = json.loads((tmp_path / "ref.json").read_text())
    assert served["losses"] == expected["losses"]
    assert served["grad_norms"] == expected["grad_norms"]
    after = _requests_on_record(home)
    assert [kind for kind, _ in after] == [*REQUESTS, *REQUESTS]  # each request once
    seq_ids = [seq for _, seq in after]
    assert seq_ids == sorted(set(seq_ids))
