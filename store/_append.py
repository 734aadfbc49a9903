"""One append: build the rows and their hash chain, insert them, update the projection.

Kept apart from connection handling so the hot path reads top to bottom: at most one read
(the hash of the expected seq, skipped when this store wrote or read it last), one multi-row
INSERT ... RETURNING, one statement for the projection, one commit. On Postgres the INSERT and
the projection's UPDATE are one statement (``_sql.pg_append``), sent with the log's lock in one
round trip (``_dialects.Postgres.write``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from kitchen.errors import ConcurrencyConflict, StoreError
from kitchen.log_records import NewEvent, StoredEvent

from . import _dialects
from .canonical import GENESIS_HASH, canonical_json, chain_hash, format_timestamp
from .projection import changes, initial_row
from .schema import events

MAX_TYPE_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Prepared:
    """A NewEvent checked and serialised once, before any connection is taken."""

    type: str
    payload_json: str
    schema_version: int


def prepare(batch: Sequence[NewEvent]) -> list[Prepared]:
    out = []
    for event in batch:
        if not isinstance(event.type, str) or not 0 < len(event.type) <= MAX_TYPE_LENGTH:
            raise StoreError(f"event type {event.type!r} must be a name of 1-128 characters")
        version = event.schema_version
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise StoreError(f"event {event.type}: schema_version must be an int >= 1")
        if not isinstance(event.payload, dict):
            raise StoreError(f"event {event.type}: payload must be a dict")
        out.append(Prepared(event.type, canonical_json(event.payload), version))
    return out


def build(
    run_id: str, prepared: Sequence[Prepared], expected_seq: int, prev_hash: str
) -> list[dict[str, Any]]:
    """The rows to insert, chained onto ``prev_hash``; one timestamp for the whole batch."""
    now = datetime.now(UTC)
    stamp = format_timestamp(now)
    rows = []
    for offset, p in enumerate(prepared, start=1):
        seq = expected_seq + offset
        digest = chain_hash(run_id, seq, p.type, p.schema_version, stamp, p.payload_json, prev_hash)
        rows.append(
            {
                "run_id": run_id,
                "seq": seq,
                "type": p.type,
                "payload": p.payload_json,
                "recorded_at": now,
                "schema_version": p.schema_version,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        prev_hash = digest
    return rows


def hash_at(conn: sa.Connection, run_id: str, seq: int) -> str:
    """The hash the new batch chains onto; a conflict if the caller's view is ahead of the log."""
    if seq == 0:
        return GENESIS_HASH
    found = conn.execute(
        sa.select(events.c.hash).where(events.c.run_id == run_id, events.c.seq == seq)
    ).scalar_one_or_none()
    if found is None:
        last = conn.execute(
            sa.select(sa.func.max(events.c.seq)).where(events.c.run_id == run_id)
        ).scalar_one()
        raise ConcurrencyConflict(
            f"run {run_id!r} has no event at seq {seq} (its last seq is {last or 0}); "
            "reload the run and append after its last seq"
        )
    return str(found)


def write(conn: sa.Connection, rows: list[dict[str, Any]], expected_seq: int) -> list[StoredEvent]:
    """Insert the rows and move the projection in the caller's transaction."""
    payloads = parse_payloads([r["payload"] for r in rows])
    run_row = merged_changes(rows, payloads)
    if expected_seq == 0:  # a new run: its whole row
        run_row = asdict(initial_row(rows[0]["run_id"], rows[0]["recorded_at"])) | run_row
    positions = _dialects.of(conn).write(conn, rows, run_row, expected_seq)
    return [
        to_stored(row, positions[row["seq"]], payload)
        for row, payload in zip(rows, payloads, strict=True)
    ]


def merged_changes(rows: list[dict[str, Any]], payloads: list[Any]) -> dict[str, Any]:
    """What the batch changes in the run's row, in the order its events say it."""
    merged: dict[str, Any] = {}
    for row, payload in zip(rows, payloads, strict=True):
        merged.update(changes(row["type"], payload, row["seq"], row["recorded_at"]))
    return merged


def parse_payloads(texts: list[str]) -> list[Any]:
    """``json.loads`` of each payload text, in one call of the parser for all of them (a
    stored payload is one JSON value, so the texts joined by commas are a JSON array); the
    per-call overhead was half the cost of reading a run. A text that is not JSON (a row
    edited by hand) raises the same error as parsing it alone would."""
    if not texts:
        return []
    try:
        parsed = json.loads("[" + ",".join(texts) + "]")
    except ValueError:
        return [json.loads(text) for text in texts]
    if len(parsed) != len(texts):  # a text that held more than one value: parse them apart
        return [json.loads(text) for text in texts]
    return list(parsed)


def to_stored(row: Any, position: int, payload: Any = None) -> StoredEvent:
    """A row (a dict we built, or a result row mapping) as a StoredEvent."""
    return StoredEvent(
        position=position,
        run_id=row["run_id"],
        seq=row["seq"],
        type=row["type"],
        payload=json.loads(row["payload"]) if payload is None else payload,
        payload_json=row["payload"],
        recorded_at=row["recorded_at"],
        schema_version=row["schema_version"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
