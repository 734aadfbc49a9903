"""A run's history as a file an auditor can check offline: the export format and its verifier.

The export is JSON Lines, one canonical JSON object per line (store/canonical.py: keys sorted,
no whitespace, UTF-8). Every line but the last is one event, in seq order::

    {"hash":…,"kind":"event","payload":{…},"prev_hash":…,"recorded_at":"2026-11-29T09:32:15.123456Z",
     "run_id":…,"schema_version":1,"seq":1,"type":"RunCreated"}

and the last line is a summary that repeats what an auditor looks for first::

    {"artifacts":[…],"checkpoints":[…],"events":N,"format":1,"head":…,"kind":"summary","run_id":…}

When the run's final adapter folder holds a model card, the summary also carries it,
``"model_card":{"files":[[path,sha256,bytes],…],"text":…,"uri":…}``: the card's text and every
file of the folder with its sha256, from which the verifier recomputes the folder's digest and
checks it against the ``final_weights`` artifact the events record, so the card is as
auditable as the history (a summary without the key, from a run without a card, is fine).

Why the verifier needs no database: each event's hash is recomputed from the exported fields
and ``prev_hash`` exactly as the store computed it (``chain_hash``), so the file alone proves
its own consistency. Why every line must be canonical: then any byte changed anywhere — even
one that leaves the parsed value equal, such as ``1.0`` → ``1.00`` — is found, at that line's
seq. What a file alone cannot prove: that nobody rewrote an event *and every later hash*. The
head hash, obtained separately (printed by ``kitchen export``, or read from the live
database), closes that gap: ``verify_export(..., head=…)`` compares it with the last hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kitchen.adapters._blob_common import manifest_digest
from kitchen.paths import CARD_FILE
from kitchen.store.canonical import GENESIS_HASH, canonical_json, chain_hash, format_timestamp

if TYPE_CHECKING:
    from kitchen.engine.state import RunState
    from kitchen.store import StoredEvent

FORMAT = 1


def event_line(row: StoredEvent) -> str:
    """One stored event as an export line; its payload is the stored text, parsed."""
    payload = json.loads(row.payload_json)
    if canonical_json(payload) != row.payload_json:
        # The store only ever writes canonical payloads; a row that is not was edited in place,
        # and re-serialising it would hide that. Keep the stored text verbatim instead.
        payload = None
    line: dict[str, Any] = {
        "kind": "event",
        "run_id": row.run_id,
        "seq": row.seq,
        "type": row.type,
        "schema_version": row.schema_version,
        "recorded_at": format_timestamp(row.recorded_at),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }
    if payload is None:
        line["payload_json"] = row.payload_json
    else:
        line["payload"] = payload
    return canonical_json(line)


def blobs_on_record(state: RunState) -> dict[str, list[dict[str, Any]]]:
    """Checkpoints and artifacts with their hashes, as the fold knows them (workflow-neutral)."""
    return {
        "checkpoints": [
            {
                "seq": c.seq,
                "name": c.name,
                "step": c.step,
                "uri": c.uri,
                "sha256": c.sha256,
                "bytes": c.bytes,
                "status": c.status,
                "location": c.location,
            }
            for c in state.checkpoints
        ],
        "artifacts": [
            {
                "seq": a.seq,
                "kind": a.kind,
                "step": a.step,
                "uri": a.uri,
                "sha256": a.sha256,
                "bytes": a.bytes,
                "deleted": a.deleted,
                "location": a.location,
            }
            for a in state.artifacts
        ],
    }


def summary_line(
    state: RunState, rows: Sequence[StoredEvent], card: Mapping[str, Any] | None = None
) -> str:
    summary = {
        "kind": "summary",
        "format": FORMAT,
        "run_id": state.run_id,
        "events": len(rows),
        "head": rows[-1].hash if rows else GENESIS_HASH,
        **blobs_on_record(state),
    }
    if card is not None:
        summary["model_card"] = dict(card)
    return canonical_json(summary)


def export_lines(
    state: RunState, rows: Sequence[StoredEvent], card: Mapping[str, Any] | None = None
) -> Iterator[str]:
    """Every line of the export of ``rows`` (one whole run, seq order), summary last, with
    the final adapter's model card (``card_entry``) when given."""
    for row in rows:
        yield event_line(row)
    yield summary_line(state, rows, card)


def card_entry(uri: str, files: Sequence[tuple[str, str, int]], text: str) -> dict[str, Any]:
    """The summary's ``model_card``: the final folder ``uri``, its files as
    ``(path, sha256, bytes)`` (the marker left out) and the card's text."""
    return {"uri": uri, "files": [list(f) for f in sorted(files)], "text": text}


def card_problem(card: Any, state: RunState) -> str | None:
    """Why a summary's ``model_card`` is not the card of the final adapter the events
    record, or None when it is."""
    final = state.latest_artifact("final_weights")
    if final is None:
        return "the summary carries a model card, but the events record no final adapter"
    try:
        files = [(str(p), str(sha), int(n)) for p, sha, n in card["files"]]
        text, uri = str(card["text"]), card["uri"]
    except (KeyError, TypeError, ValueError):
        return "the summary's model card does not have its fields (it was altered)"
    if uri != final.uri or manifest_digest(files) != (final.sha256, final.bytes):
        return "the summary's model card lists files that are not the recorded final adapter"
    data = text.encode("utf-8")
    card_file = [(sha, n) for p, sha, n in files if p == CARD_FILE]
    if card_file != [(hashlib.sha256(data).hexdigest(), len(data))]:
        return f"the summary's model card text is not the final adapter's {CARD_FILE}"
    return None


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class ExportCheck:
    """The outcome: ``ok``, or the first bad seq (None when the damage is not at an event)."""

    ok: bool
    run_id: str | None
    events: int
    head: str | None
    first_bad_seq: int | None = None
    reason: str | None = None
    model_card: bool = False  # the summary carried a model card, and it checked


class _Bad(Exception):
    def __init__(self, seq: int | None, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


_EVENT_KEYS = {
    "kind",
    "run_id",
    "seq",
    "type",
    "schema_version",
    "recorded_at",
    "prev_hash",
    "hash",
}


def _parse(raw: bytes, seq: int | None) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        obj = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise _Bad(seq, "the line is not valid JSON (it was altered)") from None
    if not isinstance(obj, dict):
        raise _Bad(seq, "the line is not a JSON object (it was altered)")
    try:
        canonical = canonical_json(obj)
    except Exception:
        raise _Bad(seq, "the line is not canonical JSON (it was altered)") from None
    if canonical != text:
        raise _Bad(seq, "the line is not canonical JSON (it was altered)")
    return obj


def _check_event(obj: dict[str, Any], seq: int, run_id: str | None, prev: str) -> str:
    """Check one event line (expected at ``seq``); return its hash."""
    keys = set(obj)
    has_payload = ("payload" in keys) != ("payload_json" in keys)
    if not has_payload or keys - {"payload", "payload_json"} != _EVENT_KEYS:
        raise _Bad(seq, "the line does not have the fields of an event (it was altered)")
    if obj["seq"] != seq:
        raise _Bad(seq, f"seq {obj['seq']!r} found where seq {seq} was expected (a gap)")
    if run_id is not None and obj["run_id"] != run_id:
        raise _Bad(seq, f"run id {obj['run_id']!r} differs from seq 1's {run_id!r}")
    if obj["prev_hash"] != prev:
        what = "64 zeros" if seq == 1 else f"the hash of seq {seq - 1}"
        raise _Bad(seq, f"prev_hash does not match {what}")
    payload_json = obj.get("payload_json")
    if payload_json is None:
        payload_json = canonical_json(obj["payload"])
    if not all(isinstance(obj[k], str) for k in ("run_id", "type", "recorded_at")) or not (
        isinstance(obj["schema_version"], int) and isinstance(payload_json, str)
    ):
        raise _Bad(seq, "a field has the wrong type (it was altered)")
    recomputed = chain_hash(
        obj["run_id"],
        seq,
        obj["type"],
        obj["schema_version"],
        obj["recorded_at"],
        payload_json,
        prev,
    )
    if recomputed != obj["hash"]:
        raise _Bad(seq, "hash does not match its contents (the event was altered)")
    return str(obj["hash"])


def _check_summary(
    obj: dict[str, Any], run_id: str | None, head: str, events: list[dict[str, Any]]
) -> None:
    """The summary repeats facts of the events; a copy that disagrees was altered."""
    if obj.get("run_id") != run_id or obj.get("events") != len(events):
        raise _Bad(None, f"the summary does not match the {len(events)} events above it")
    if obj.get("head") != head:
        raise _Bad(None, "the summary's head hash is not the last event's hash")
    if run_id is None:
        return
    state = _fold(run_id, events)
    on_record = blobs_on_record(state)
    for key in ("checkpoints", "artifacts"):
        if obj.get(key) != on_record[key]:
            raise _Bad(None, f"the summary's {key} differ from those the events record")
    if "model_card" in obj:
        problem = card_problem(obj["model_card"], state)
        if problem is not None:
            raise _Bad(None, problem)


def _fold(run_id: str, events: list[dict[str, Any]]) -> RunState:
    """Fold exported events as ``kitchen show`` folds stored ones (upcasting old versions)."""
    from kitchen.engine import events as ev
    from kitchen.engine.state import Recorded, fold

    recs = []
    for e in events:
        payload = e["payload"] if "payload" in e else json.loads(e["payload_json"])
        when = datetime.strptime(e["recorded_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        recs.append(Recorded(e["seq"], when, ev.decode(e["type"], e["schema_version"], payload)))
    return fold(run_id, recs)


def verify_export(lines: Iterable[bytes], head: str | None = None) -> ExportCheck:
    """Check an export line by line; the first problem ends the check.

    ``lines`` are the file's raw lines (bytes, without or with their newline). Every event line
    must be canonical, contiguous from seq 1, linked by ``prev_hash`` and hash to its own
    ``hash``; the summary must close the file and agree with the events; ``head``, when given,
    must equal the last event's hash.
    """
    run_id: str | None = None
    prev = GENESIS_HASH
    count = 0
    summary_seen = False
    card = False
    seen: list[dict[str, Any]] = []
    try:
        for raw in lines:
            raw = raw.rstrip(b"\n")
            if summary_seen:
                raise _Bad(None, "there are lines after the summary (it was altered)")
            seq = count + 1
            obj = _parse(raw, seq)
            if obj.get("kind") == "summary":
                _check_summary(obj, run_id, prev, seen)
                summary_seen = True
                card = "model_card" in obj
                continue
            if obj.get("kind") != "event":
                raise _Bad(seq, "the line is neither an event nor the summary (it was altered)")
            prev = _check_event(obj, seq, run_id, prev)
            run_id = run_id or obj["run_id"]
            seen.append(obj)
            count = seq
        if count == 0:
            raise _Bad(None, "the file holds no events")
        if not summary_seen:
            raise _Bad(None, f"no summary line after seq {count} (the export is truncated)")
        if head is not None and head.lower() != prev:
            raise _Bad(
                None,
                f"the last hash (seq {count}) is {prev[:12]}…, not the head {head[:12]}…: "
                "the history was rewritten or truncated",
            )
    except _Bad as bad:
        return ExportCheck(False, run_id, count, None, bad.seq, bad.reason)
    return ExportCheck(True, run_id, count, prev, model_card=card)
