"""Canonical JSON and event hashes, against values worked out by hand (and `sha256sum`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from kitchen.errors import StoreError
from kitchen.store import GENESIS_HASH, canonical_json, event_hash


@pytest.mark.parametrize(
    ("obj", "text"),
    [
        ({"b": 1, "a": [1, 2.5, None, True]}, '{"a":[1,2.5,null,true],"b":1}'),
        ({"z": {"y": 1, "x": 2}}, '{"z":{"x":2,"y":1}}'),
        ({"s": "é ✓"}, '{"s":"é ✓"}'),
        ({"f": 0.1, "g": 1e-07, "h": 1e22, "i": -0.0}, '{"f":0.1,"g":1e-07,"h":1e+22,"i":-0.0}'),
        ({"t": (1, 2)}, '{"t":[1,2]}'),
        ({"q": 'say "hi"\n'}, '{"q":"say \\"hi\\"\\n"}'),
    ],
)
def test_canonical_json(obj: object, text: str) -> None:
    assert canonical_json(obj) == text


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        ({"metrics": {"loss": float("nan")}}, "$.metrics.loss"),
        ({"xs": [1.0, float("-inf")]}, "$.xs[1]"),
        ({"when": datetime(2025, 1, 1, tzinfo=UTC)}, "$.when"),
    ],
)
def test_non_json_values_are_refused_by_path(obj: object, where: str) -> None:
    with pytest.raises(StoreError) as info:
        canonical_json(obj)
    assert f"at {where}:" in str(info.value)
    assert "\n" not in str(info.value)


def test_genesis_hash_is_64_zeros() -> None:
    assert GENESIS_HASH == "0000000000000000000000000000000000000000000000000000000000000000"


def test_event_hash_matches_a_hand_computed_digest() -> None:
    # printf '%s' '{"payload":{"lr":0.0001,"recipe":"sl"},"recorded_at":
    # "2025-01-02T03:04:05.000006Z","run_id":"r1","schema_version":1,"seq":1,
    # "type":"RunCreated"}' followed by 64 zeros, piped to sha256sum
    at = datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    digest = event_hash("r1", 1, "RunCreated", 1, at, '{"lr":0.0001,"recipe":"sl"}', GENESIS_HASH)
    assert digest == "bb2ca1992bc8c521420b2e1faa96db9f991b22c660c0407905ecf5ad826c0382"


def test_event_hash_uses_utc_and_six_fraction_digits() -> None:
    # the same instant given in UTC+02:00, with zero microseconds printed as .000000
    at = datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    digest = event_hash("r1", 2, "E", 2, at, '{"k":"é"}', "a" * 64)
    assert digest == "6d7b776d4cbbdd26350a7748c7bfdbdc7c448d6a5bc85fd8a4e0b0a30869aade"


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        event_hash("r1", 1, "E", 1, datetime(2025, 1, 1), "{}", GENESIS_HASH)
