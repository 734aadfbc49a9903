"""HFHubClient against a real HTTP endpoint: a local server that answers like the hub's
error responses, and a closed port standing in for a network that is down."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kitchen.adapters.hf_hub import HFHubClient
from kitchen.errors import ConfigError, NotFound, OfflineMiss
from kitchen.testing.hub_contract import COMMIT, FAKE_TOKEN, FILES, build_hub_cache

Served = tuple[str, list[str]]


def test_unknown_repo_is_not_found_and_the_token_stays_out(fake_hub: Served) -> None:
    client = HFHubClient(FAKE_TOKEN)
    with pytest.raises(NotFound, match="'org/absent' is not on the hub") as caught:
        client.download_file("org/absent", "config.json")
    assert FAKE_TOKEN not in str(caught.value)
    assert f"Bearer {FAKE_TOKEN}" in fake_hub[1]


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
    fake_hub: Served, call: Callable[[HFHubClient], object], message: str
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


def test_cached_repo_is_served_while_the_hub_fails(fake_hub: Served, tmp_path: Path) -> None:
    build_hub_cache(tmp_path / "hf", "org/tiny", FILES)
    client = HFHubClient()
    assert client.download_file("org/tiny", "config.json").read_bytes() == FILES["config.json"]
    assert client.model_info("org/tiny")["siblings"] == ["config.json", "tokenizer/vocab.txt"]
