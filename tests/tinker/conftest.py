"""A served backend for the Tinker adapter: ``kitchen serve`` as a uvicorn subprocess on a
free loopback port, with its own KITCHEN_HOME and a key made by ``kitchen serve keys create``.

The adapter under test reads TINKER_BASE_URL and TINKER_API_KEY from the environment, as a
user's run would; nothing else tells it where the service is.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import Kitchen, Result

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("tinker")
pytest.importorskip("uvicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TINKER_", "KITCHEN_", "OTEL_"))
    }
    env.update(
        KITCHEN_HOME=str(home),
        PYTHONPATH=str(ROOT),
        TINKER_TELEMETRY="0",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


class Served:
    """``kitchen serve`` in a subprocess; ``kill`` is kill -9, ``start`` (re)starts it."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: Any = None
        out = subprocess.run(
            [sys.executable, "-m", "kitchen.cli", "serve", "keys", "create", "--name", "tests"],
            env=clean_env(home),
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"tml-[A-Za-z0-9_-]+", out.stdout)
        assert found, out.stdout
        self.key = found.group(0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        return {
            "TINKER_BASE_URL": self.url,
            "TINKER_API_KEY": self.key,
            "TINKER_TELEMETRY": "0",
            "HF_HUB_OFFLINE": "1",
        }

    def start(self) -> None:
        self._close_log()
        self._log = open(self.home / f"server-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kitchen.cli",
                "serve",
                "--port",
                str(self.port),
                "--checkpoint-every",
                "2",
            ],
            env=clean_env(self.home),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.home,
        )
        self.starts += 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (
                self.home / f"server-{self.starts - 1}.log"
            ).read_text()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("kitchen serve did not start")

    def client(self, home: Path, *args: str) -> subprocess.Popen[str]:
        """``kitchen ARGS`` in ``home`` against this server, running in the background."""
        env = clean_env(home)
        env.update(self.client_env())
        return subprocess.Popen(
            [sys.executable, "-m", "kitchen.cli", *args],
            env=env,
            cwd=home,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log()


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("served")
    server = Served(home)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tinker_env(served: Served) -> Iterator[Served]:
    """The adapter in this process points at the served backend (restored afterwards)."""
    saved = {k: os.environ.get(k) for k in served.client_env()}
    os.environ.update(served.client_env())
    yield served
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def kitchen_in(home: Path, served: Served | None = None) -> Kitchen:
    """``python -m kitchen.cli ARGS`` in ``home`` (this checkout's kitchen), pointed at
    ``served`` when given; output captured so that tests can grep it for the key."""

    def run(*args: str, timeout: float = 600, extra_env: dict[str, str] | None = None) -> Result:
        env = clean_env(home)
        if served is not None:
            env.update(served.client_env())
        env.update(extra_env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "kitchen.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=home,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def kitchen_for(tmp_path: Path) -> Any:
    """``kitchen_for(name, served_or_None)``: a CLI in its own KITCHEN_HOME under tmp_path."""

    def make(name: str, served: Served | None = None) -> tuple[Kitchen, Path]:
        home = tmp_path / name
        home.mkdir()
        return kitchen_in(home, served), home

    return make


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Served]:
    """A server of this test's own, which the test may kill and restart."""
    home = tmp_path / "own-server"
    home.mkdir()
    server = Served(home)
    server.start()
    yield server
    server.stop()
