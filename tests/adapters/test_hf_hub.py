"""HFHubClient against a real HTTP endpoint: a local server that answers like the hub's
error responses, and a closed port standing in for a network that is down."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from kitchen.adapters.hf_hub import HFHubClient
from kitchen.errors import ConfigError, NotFound, OfflineMiss
from kitchen.testing.hub_contract import COMMIT, FAKE_TOKEN, FILES, build_hub_cache, isolate_hf_env

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


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    isolate_hf_env(monkeypatch, tmp_path / "hf", offline=False)
    monkeypatch.setenv("HF_ENDPOINT", url)
    FakeHub.seen_auth = []
    yield url
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
    isolate_hf_env(monkeypatch, home, offline=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    return home


def test_unknown_repo_is_not_found_and_the_token_stays_out(fake_hub: str) -> None:
    client = HFHubClient(FAKE_TOKEN)
    with pytest.raises(NotFound, match="'org/absent' is not on the hub") as caught:
        client.download_file("org/absent", "config.json")
    assert FAKE_TOKEN not in str(caught.value)
    assert f"Bearer {FAKE_TOKEN}" in FakeHub.seen_auth


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.download_file("org/gated", "config.json"), "is gated"),
        (lambda c: c.download_file("org/tiny", "config.json", revision="v9"), "revision 'v9'"),
        (lambda c: c.download_file("org/tiny", "absent.bin"), "file 'absent.bin'"),
        (lambda c: c.snapshot("org/absent"), "'org/absent' is not on the hub"),
        (lambda c: c.model_info("org/absent"), "'org/absent' is not on the hub"),
    ],
)
def test_hub_answers_become_not_found(
    fake_hub: str, call: Callable[[HFHubClient], object], message: str
) -> None:
    with pytest.raises(NotFound, match=message) as caught:
        call(HFHubClient())
    assert "\n" not in str(caught.value)


def test_unknown_repo_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="repo type 'modle'"):
        HFHubClient(repo_type="modle")


def test_cached_repo_is_served_when_the_hub_cannot_be_reached(hub_down: Path) -> None:
    client = HFHubClient()
    assert client.download_file("org/tiny", "config.json").read_bytes() == FILES["config.json"]
    assert client.list_files("org/tiny") == ["config.json", "tokenizer/vocab.txt"]
    assert client.model_info("org/tiny")["sha"] == COMMIT
    assert (client.snapshot("org/tiny") / "tokenizer" / "vocab.txt").read_bytes() == b"a\nb\n"
    with pytest.raises(OfflineMiss, match=r"cannot be reached \(http://127\.0\.0\.1:"):
        client.model_info("org/absent")


def test_cached_repo_is_served_while_the_hub_fails(fake_hub: str, tmp_path: Path) -> None:
    build_hub_cache(tmp_path / "hf", "org/tiny", FILES)
    client = HFHubClient()
    assert client.download_file("org/tiny", "config.json").read_bytes() == FILES["config.json"]
    assert client.model_info("org/tiny")["siblings"] == ["config.json", "tokenizer/vocab.txt"]
