"""A real Postgres server stopped in the middle of a run, on a private cluster of this module's
own (initdb on a free port, never the shared server).

The run stops itself at a known step (``KITCHEN_FAULT=...=SIGSTOP``), the test stops the
server (``pg_ctl stop -m fast``: every connection is cut) and lets the run continue:

- started again within the retry budget, the run rides it out and completes, without a resume;
- left down past the budget, the attempt ends with exit 75 and nothing on record (the log
  cannot be written); once the server is back the run shows as crashed, and a plain
  ``kitchen resume`` — no ``--force``, no wait — completes it with the same bytes as an
  uninterrupted run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import SMALL_SL_CONFIG as CONFIG
from kitchen.testing.runs import adapter_sha, replay_json

pytestmark = pytest.mark.slow

PG_BIN = Path("/usr/lib/postgresql/15/bin")
STOP_AT = "stage:get_batch:after@8=SIGSTOP"  # step 8: after the checkpoint of step 5


def _bindir() -> Path | None:
    if (PG_BIN / "initdb").is_file():
        return PG_BIN
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        path = Path(found.stdout.strip())
        if (path / "initdb").is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """A throwaway cluster: initdb, pg_ctl start/stop. initdb refuses to run as root, so as
    root every server command runs as the ``postgres`` user (``runuser``)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir, self.port = bindir, _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="kitchen-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self.as_user, str(self.bindir / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (cmd, done.stdout, done.stderr)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [
                    *self.as_user,
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivatePostgres]:
    bindir = _bindir()
    if bindir is None:
        reason = "the Postgres server binaries (initdb, pg_ctl) are not installed"
        if os.environ.get("KITCHEN_REQUIRE_POSTGRES"):
            pytest.fail(f"KITCHEN_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(reason)
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root, and no runuser to run initdb as the postgres user")
    pg = PrivatePostgres(bindir)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.remove()


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "T"


def _run_until_stopped(home: Path, url: str, run_id: str) -> subprocess.Popen[str]:
    """``kitchen run`` in the background, returned once it has stopped itself at STOP_AT."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITCHEN_", "OTEL_"))}
    env.update(KITCHEN_HOME=str(home), KITCHEN_DB_URL=url, KITCHEN_FAULT=STOP_AT)
    exe = shutil.which("kitchen") or "kitchen"
    proc = subprocess.Popen(
        [exe, "run", "sl_basic", *CONFIG, "--run-id", run_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not _stopped(proc.pid):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the run never stopped at {STOP_AT}: {proc.communicate()[1]}")
        time.sleep(0.05)
    return proc


def test_a_database_back_within_the_retry_budget_is_ridden_out(
    tmp_path: Path, cluster: PrivatePostgres, reference: str
) -> None:
    home = tmp_path / "home"
    proc = _run_until_stopped(home, cluster.url, "blip")
    cluster.stop()
    os.kill(proc.pid, signal.SIGCONT)
    time.sleep(3.0)  # the run's commits fail and are retried meanwhile
    cluster.start()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert adapter_sha(home, "blip") == reference
    events = replay_json(make_kitchen(home, cluster.url), "blip")["events"]
    assert [e["type"] for e in events if e["type"] in ("RunResumed", "AttemptInterrupted")] == []


def test_a_database_down_past_the_retry_budget_ends_the_attempt_resumable(
    tmp_path: Path, cluster: PrivatePostgres, reference: str
) -> None:
    home = tmp_path / "home"
    kitchen = make_kitchen(home, cluster.url)
    proc = _run_until_stopped(home, cluster.url, "outage")
    cluster.stop()
    try:
        os.kill(proc.pid, signal.SIGCONT)
        _, err = proc.communicate(timeout=300)
    finally:
        cluster.start()
    assert proc.returncode == 75, err[-3000:]
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if "fault (" in ln]
    assert len(lines) == 1, err
    assert lines[0].startswith("  fault (store_unavailable, not on record): "), lines[0]
    assert f"127.0.0.1:{cluster.port}" in lines[0]

    # Nothing could be recorded: the log says running, the worker is gone, so: crashed.
    r = kitchen("show", "outage")
    assert r.code == 0, r.stderr
    assert "crashed (the log says running)" in r.stdout
    r = kitchen("resume", "outage")
    assert r.code == 0, r.stderr[-3000:]
    assert adapter_sha(home, "outage") == reference
    events = replay_json(kitchen, "outage")["events"]
    assert [e["type"] for e in events if e["type"] == "AttemptInterrupted"] == []
    resumed = [e["payload"] for e in events if e["type"] == "RunResumed"]
    assert [p["from_step"] for p in resumed] == [5]
    assert events[-1]["type"] == "RunCompleted"
