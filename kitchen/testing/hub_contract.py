"""The HubClient contract, run offline against a hand-built Hugging Face cache.

Subclass ``HubClientContract`` and override ``make_client`` (a factory taking a token).
The ``hf_home`` fixture lays out a cache the way huggingface_hub does and turns
HF_HUB_OFFLINE on, so the suite never needs a network.
"""

from __future__ import annotations

import hashlib
import logging
import os
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from kitchen.errors import ConfigError, OfflineMiss
from kitchen.ports import HubClient

COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILES = {
    "config.json": b'{"model_type": "llama"}\n',
    "tokenizer/vocab.txt": b"a\nb\n",
}
FAKE_TOKEN = "hf_kitchenFAKEtoken0123456789abcdef"
_PREFIX = {"model": "models", "dataset": "datasets", "space": "spaces"}


def build_hub_cache(
    hf_home: Path,
    repo_id: str,
    files: Mapping[str, bytes],
    *,
    commit: str = COMMIT,
    repo_type: str = "model",
    ref: str = "main",
) -> Path:
    """Lay ``files`` out as huggingface_hub's cache does; return the snapshot folder.

    ``hub/<type>s--org--name/refs/<ref>`` holds the commit, ``blobs/`` the contents, and
    ``snapshots/<commit>/<path>`` links to the blobs.
    """
    repo_dir = hf_home / "hub" / f"{_PREFIX[repo_type]}--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / ref).write_text(commit)
    (repo_dir / "blobs").mkdir(exist_ok=True)
    snapshot = repo_dir / "snapshots" / commit
    for rel, data in files.items():
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def isolate_hf_env(monkeypatch: pytest.MonkeyPatch, hf_home: Path, *, offline: bool = True) -> None:
    """Point every HF variable at ``hf_home`` and drop tokens and endpoints from outside."""
    for var in (
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_DATASETS_CACHE",
        "HF_ENDPOINT",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_DATASETS_OFFLINE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


class HubClientContract:
    __test__ = False

    @pytest.fixture
    def make_client(self) -> Callable[[str | None], HubClient]:
        raise NotImplementedError("override make_client")

    @pytest.fixture
    def hf_home(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        home = tmp_path / "hf"
        build_hub_cache(home, "org/tiny", FILES)
        isolate_hf_env(monkeypatch, home)
        return home

    @pytest.fixture
    def client(self, make_client: Callable[[str | None], HubClient], hf_home: Path) -> HubClient:
        return make_client(None)

    def test_satisfies_the_port(self, client: HubClient) -> None:
        assert isinstance(client, HubClient)

    def test_download_file_from_the_cache(self, client: HubClient, hf_home: Path) -> None:
        path = client.download_file("org/tiny", "config.json")
        assert path.read_bytes() == b'{"model_type": "llama"}\n'
        assert path.is_relative_to(hf_home)
        nested = client.download_file("org/tiny", "tokenizer/vocab.txt", revision=COMMIT)
        assert nested.read_bytes() == b"a\nb\n"

    def test_snapshot_from_the_cache(self, client: HubClient) -> None:
        folder = client.snapshot("org/tiny", revision="main")
        assert folder.name == COMMIT
        assert (folder / "config.json").read_bytes() == b'{"model_type": "llama"}\n'
        assert (folder / "tokenizer" / "vocab.txt").read_bytes() == b"a\nb\n"

    def test_list_files_and_model_info_from_the_cache(self, client: HubClient) -> None:
        assert client.list_files("org/tiny") == ["config.json", "tokenizer/vocab.txt"]
        info = client.model_info("org/tiny")
        assert (info["id"], info["sha"]) == ("org/tiny", COMMIT)
        assert info["siblings"] == ["config.json", "tokenizer/vocab.txt"]

    def test_missing_file_is_an_offline_miss_in_one_line(self, client: HubClient) -> None:
        with pytest.raises(OfflineMiss) as caught:
            client.download_file("org/tiny", "model.safetensors")
        message = str(caught.value)
        assert "\n" not in message
        assert "'model.safetensors'" in message and "'org/tiny'" in message
        assert "not in the local cache" in message and "HF_HOME=" in message

    @pytest.mark.parametrize("call", ["download_file", "snapshot", "list_files", "model_info"])
    def test_missing_repo_is_an_offline_miss(self, client: HubClient, call: str) -> None:
        args = ("org/absent", "config.json") if call == "download_file" else ("org/absent",)
        with pytest.raises(OfflineMiss, match="'org/absent'"):
            getattr(client, call)(*args)

    def test_missing_revision_is_an_offline_miss(self, client: HubClient) -> None:
        with pytest.raises(OfflineMiss, match="revision 'v2'"):
            client.snapshot("org/tiny", revision="v2")

    def test_invalid_repo_id_is_a_config_error(self, client: HubClient) -> None:
        with pytest.raises(ConfigError, match="not a valid repo id"):
            client.download_file("org/tiny/extra", "config.json")

    def test_token_never_appears_in_errors_or_logs(
        self,
        make_client: Callable[[str | None], HubClient],
        hf_home: Path,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
        client = make_client(FAKE_TOKEN)
        caplog.set_level(logging.DEBUG)
        calls: list[Callable[[], object]] = [
            lambda: client.download_file("org/tiny", "absent.bin"),
            lambda: client.snapshot(f"org/{FAKE_TOKEN}"),
            lambda: client.model_info("org/absent"),
        ]
        for call in calls:
            with pytest.raises(OfflineMiss) as caught:
                call()
            shown = str(caught.value) + repr(caught.value)
            shown += "".join(traceback.format_exception(caught.value))
            assert FAKE_TOKEN not in shown
        assert FAKE_TOKEN not in caplog.text
        assert FAKE_TOKEN not in repr(client)
