"""Checking a run's hash chain: the audit behind ``kitchen replay --verify``."""

from __future__ import annotations

from collections.abc import Sequence

from kitchen.log_records import StoredEvent, VerifyResult

from .canonical import GENESIS_HASH, event_hash


def verify_chain(found: Sequence[StoredEvent]) -> VerifyResult:
    """Walk the events in seq order; report the first whose seq, link or hash is wrong.

    The hash is recomputed from the stored columns, so an edit to any hashed field (payload,
    type, schema_version, recorded_at) shows up at the seq where it was made.
    """
    prev = GENESIS_HASH
    for checked, event in enumerate(found):
        expected_seq = checked + 1
        problem = _problem(event, expected_seq, prev)
        if problem:
            return VerifyResult(False, checked, expected_seq, problem)
        prev = event.hash
    return VerifyResult(True, len(found), None, None)


def _problem(event: StoredEvent, expected_seq: int, prev: str) -> str | None:
    if event.seq != expected_seq:
        return f"seq {event.seq} found where seq {expected_seq} was expected (a gap)"
    if event.prev_hash != prev:
        return f"seq {event.seq}: prev_hash does not match the hash of seq {event.seq - 1}"
    recomputed = event_hash(
        event.run_id,
        event.seq,
        event.type,
        event.schema_version,
        event.recorded_at,
        event.payload_json,
        event.prev_hash,
    )
    if recomputed != event.hash:
        return f"seq {event.seq}: hash does not match its contents (the row was altered)"
    return None
