"""Real HTTP endpoints for the hub adapters: a local server that answers like the hub's
error responses, and a closed port standing in for a network that is down."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from kitchen.testing.hub_contract import COMMIT, FILES, build_hub_cache, isolate_hf_env

# (status, X-Error-Code) the fake hub answers for a path fragment.
ANSWERS = {
    "org/absent": (404, "RepoNotFound"),
    "org/gated": (403, "GatedRepo"),
    "/v9/": (404, "RevisionNotFound"),
    "absent.bin": (404, "EntryNotFound"),
}


class FakeHub(BaseHTTPRequestHandler):
    seen_auth: ClassVar[list[str]] = []

    def _answer(self) -> None:
        FakeHub.seen_auth.append(self.headers.get("Authorization", ""))
        status, code = next((a for frag, a in ANSWERS.items() if frag in self.path), (500, ""))
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
            self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""


def go_online(monkeypatch: pytest.MonkeyPatch, hf_home: Path) -> None:
    """Clear offline mode in the environment and in huggingface_hub's import-time copy.

    huggingface_hub reads HF_HUB_OFFLINE once, at import, and earlier tests import it
    while offline; a process that starts online has the copy False, as set here.
    """
    isolate_hf_env(monkeypatch, hf_home, offline=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[str]]]:
    """The endpoint URL, and the Authorization headers it has received."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    go_online(monkeypatch, tmp_path / "hf")
    monkeypatch.setenv("HF_ENDPOINT", url)
    FakeHub.seen_auth = []
    yield url, FakeHub.seen_auth
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def hub_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cached repo, and an endpoint on a port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path / "hf"
    build_hub_cache(home, "org/tiny", FILES)
    go_online(monkeypatch, home)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    return home
