"""A local S3-compatible server for tests: moto's, on a free port of this machine.

``MotoS3`` starts it in this process (``moto.server.ThreadedMotoServer``); its buckets live in
moto's in-process state, so a server stopped and started again on the same port still holds
them, which lets a test take the endpoint away and bring it back. ``env`` gives the variables
a ``kitchen`` subprocess needs to reach it (credentials and ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoS3:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: Any = None

    def start(self) -> MotoS3:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        _wait_for(self.endpoint)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            **extra,
        }

    def make_bucket(self, name: str) -> None:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=name)


class StrictMotoS3(MotoS3):
    """A moto server in its own process that checks credentials: every key it does not know
    (all of them: it has no users) is refused, as a real endpoint refuses wrong ones."""

    def start(self) -> StrictMotoS3:
        env = {"INITIAL_NO_AUTH_ACTION_COUNT": "0", "PATH": ""}
        self._server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(self.endpoint)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.terminate()
            self._server.wait(timeout=10)
            self._server = None


def _wait_for(endpoint: str, timeout: float = 30.0) -> None:
    host, port = endpoint.rsplit("/", 1)[-1].split(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
