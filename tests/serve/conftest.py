"""Fixtures for ``kitchen serve``: a real uvicorn server in a subprocess on a free loopback
port, a key made by the real key code, and the in-process reference run of the loop."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOOP = Path(__file__).with_name("loop_script.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINKER_", "KITCHEN_"))}
    env.update(
        KITCHEN_HOME=str(home),
        PYTHONPATH=str(ROOT),
        TINKER_TELEMETRY="0",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


class Server:
    """``kitchen serve`` in a subprocess; ``start`` may arm a fault point (KITCHEN_FAULT)."""

    def __init__(self, home: Path, port: int, every: int = 2) -> None:
        self.home, self.port, self.every = home, port, every
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.extra: list[str] = []  # more flags of kitchen serve

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, fault: str | None = None, wait: bool = True) -> None:
        env = base_env(self.home)
        if fault:
            env["KITCHEN_FAULT"] = fault
        with open(self.home / f"server-{self.starts}.log", "wb") as log:
            self._popen(env, log)
        self.starts += 1
        if wait:
            self.wait_up()

    def _popen(self, env: dict[str, str], log: Any) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kitchen.cli",
                "serve",
                "--port",
                str(self.port),
                "--checkpoint-every",
                str(self.every),
                *self.extra,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.home,
        )

    def wait_up(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return  # died (an armed fault may fire early); the caller decides
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("kitchen serve did not start")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def serve_home(tmp_path: Path) -> tuple[Path, str]:
    from kitchen.serve import keys

    home = tmp_path / "home"
    home.mkdir()
    key, _ = keys.create(home / "serve", "test")
    return home, key


@pytest.fixture
def server(serve_home: tuple[Path, str]) -> Iterator[Server]:
    s = Server(serve_home[0], free_port())
    yield s
    s.stop()


def run_loop(mode: str, out: Path, env: dict[str, str], *extra: str, timeout: float = 600) -> Any:
    proc = subprocess.run(
        [sys.executable, str(LOOP), mode, str(out), *extra],
        env=env,
        capture_output=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-4000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The loop in-process on the local backend, in a process of its own."""
    work = tmp_path_factory.mktemp("reference")
    return run_loop("inprocess", work / "out.json", base_env(work), str(work))  # type: ignore[no-any-return]
