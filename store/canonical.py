"""Canonical JSON and the hash chain.

The hash of an event must be reproducible by anyone holding the log, in any language, years
later. So the bytes that are hashed are pinned down: keys sorted, no whitespace, UTF-8 text
(not ``\\u`` escapes), floats as Python's shortest round-trip ``repr``, and no NaN or Infinity
(they are not JSON, and other parsers would read them differently or not at all).
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from kitchen.errors import StoreError

GENESIS_HASH = "0" * 64

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` canonically; refuse NaN, Infinity and non-JSON values by key path."""
    try:
        return _ENCODER.encode(obj)
    except (ValueError, TypeError) as exc:
        path = _bad_path(obj, "$")
        where = f"at {path}" if path else ""
        raise StoreError(
            f"event payload is not canonical JSON {where}: {exc}; "
            "record NaN/Infinity as null or a string and convert other values to JSON types"
        ) from None


def _bad_path(obj: Any, path: str) -> str | None:
    """Find the first value JSON cannot represent, so the error can name its key."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else path
    if obj is None or isinstance(obj, str | int | bool):
        return None
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                return f"{path}.{key!r}"
            found = _bad_path(value, f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            found = _bad_path(value, f"{path}[{i}]")
            if found:
                return found
        return None
    return path


def format_timestamp(moment: datetime) -> str:
    """The one text form of ``recorded_at`` that is hashed: UTC, always six fraction digits."""
    if moment.tzinfo is None:
        raise ValueError("recorded_at must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    run_id: str,
    seq: int,
    type: str,
    schema_version: int,
    recorded_at: datetime,
    payload_json: str,
    prev_hash: str,
) -> str:
    """sha256 hex of canonical_json({run_id, seq, type, schema_version, recorded_at, payload})
    followed by ``prev_hash``.

    ``payload_json`` is the stored text, spliced in as is: for a canonical payload this is
    exactly the canonical envelope, and hashing the stored bytes means any edit to them,
    even a re-formatting one, breaks the chain.
    """
    stamp = format_timestamp(recorded_at)
    return chain_hash(run_id, seq, type, schema_version, stamp, payload_json, prev_hash)


def chain_hash(
    run_id: str,
    seq: int,
    type: str,
    schema_version: int,
    stamp: str,
    payload_json: str,
    prev_hash: str,
) -> str:
    """``event_hash`` with the timestamp already formatted (a batch shares one).

    The envelope is spelled out in canonical key order rather than serialised, because this
    runs for every event appended; ``encode_basestring`` is the string form the canonical
    encoder itself uses.
    """
    envelope = "".join(
        (
            '{"payload":',
            payload_json,
            ',"recorded_at":"',
            stamp,
            '","run_id":',
            encode_basestring(run_id),
            ',"schema_version":',
            str(int(schema_version)),
            ',"seq":',
            str(int(seq)),
            ',"type":',
            encode_basestring(type),
            "}",
            prev_hash,
        )
    )
    return hashlib.sha256(envelope.encode("utf-8")).hexdigest()


def snapshot_hash(run_id: str, version: str, seq: int, event_hash: str, state: str) -> str:
    """sha256 hex that seals a snapshot: the canonical JSON of ``{event_hash, run_id, seq,
    version}`` followed by the state text. A snapshot whose stored sha256 differs from this is
    damaged and is never used."""
    head = canonical_json(
        {"event_hash": event_hash, "run_id": run_id, "seq": seq, "version": version}
    )
    digest = hashlib.sha256(head.encode("utf-8"))
    digest.update(state.encode("utf-8"))
    return digest.hexdigest()
