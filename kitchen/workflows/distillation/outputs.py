"""The teacher's completions for off-policy distillation: one blob, written once per run.

Canonical JSON (sorted keys, no spaces), so the same completions always give the same bytes:
per completion, the index of its prompt row, the rendered prompt's token ids (``ob``) and the
teacher's sampled token ids. The student trains on exactly these tokens, on the first attempt
as on every resume; the teacher is never asked again while the blob verifies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from kitchen.ports import BlobRef
from kitchen.stage_api import ArtifactRecord, RunState

KIND = "teacher_outputs"
FILE = "completions.json"  # at artifacts/teacher_outputs/ in the run folder
FORMAT = "kitchen.teacher_outputs/1"


@dataclass(frozen=True)
class Completion:
    row: int
    ob: tuple[int, ...]
    tokens: tuple[int, ...]


def encode(completions: Sequence[Completion]) -> bytes:
    doc = {
        "format": FORMAT,
        "completions": [
            {"row": c.row, "ob": list(c.ob), "tokens": list(c.tokens)} for c in completions
        ],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode(data: bytes) -> list[Completion]:
    doc = json.loads(data)
    if doc.get("format") != FORMAT:
        raise ValueError(f"not a teacher outputs blob of format {FORMAT}: {doc.get('format')!r}")
    return [
        Completion(
            int(c["row"]), tuple(int(x) for x in c["ob"]), tuple(int(x) for x in c["tokens"])
        )
        for c in doc["completions"]
    ]


def on_record(state: RunState) -> ArtifactRecord | None:
    """The newest record, superseded or not (a resume without a checkpoint supersedes every
    earlier event, but the completions it recorded are still the ones to train on)."""
    found = [a for a in state.artifacts if a.kind == KIND and not a.deleted]
    return found[-1] if found else None


def blob_ref(record: ArtifactRecord) -> BlobRef:
    return BlobRef(record.uri, record.sha256, record.bytes)
