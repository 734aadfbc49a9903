"""The activity log a runner gives its stages (``StageContext.activities``).

An activity's start (:class:`~kitchen.engine.events.ActivityStarted`) and result
(:class:`~kitchen.engine.events.ActivityCompleted`) are recorded in the unit of work and
committed at once, with everything recorded before them, before the call returns: a stage
that records a result and goes on never builds on something a crash could take back. A
result larger than ``INLINE_BYTES`` of canonical JSON is written first as a content-addressed
blob (``<run>/artifacts/activity/<sha256>.json``) and the event holds its reference; reading
it back verifies its sha256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from kitchen.engine import events as ev
from kitchen.engine import faults
from kitchen.engine.unit_of_work import UnitOfWork
from kitchen.errors import ConfigError
from kitchen.paths import artifact_key
from kitchen.ports import BlobRef, BlobStore
from kitchen.stage_api import ActivityResult, RecordedActivity

INLINE_BYTES = 2048
BLOB_KIND = "activity"


def canonical(result: Any) -> bytes:
    return json.dumps(result, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


class Journal:
    """The activity log of one attempt, over the runner's unit of work."""

    def __init__(self, uow: UnitOfWork, blobs: BlobStore, run_id: str) -> None:
        self.uow = uow
        self.blobs = blobs
        self.run_id = run_id

    def get(self, key: str) -> RecordedActivity | None:
        a = self.uow.state.activities.get(key)
        if a is None:
            return None
        result = a.result
        if a.status == "completed" and a.blob_uri is not None:
            ref = BlobRef(a.blob_uri, a.blob_sha256 or "", a.blob_bytes or 0)
            if not self.blobs.verify(ref):
                raise ConfigError(
                    f"the result of activity {key!r} (blob {a.blob_uri}) is missing or corrupt; "
                    "restore the run's blobs and resume"
                )
            result = json.loads(self.blobs.read_bytes(a.blob_uri))
        return RecordedActivity(a.key, a.kind, a.step, a.attempt, a.status, result, a.recovered)

    def start(self, key: str, kind: str, step: int | None = None) -> None:
        self.uow.record(ev.ActivityStarted(key=key, kind=kind, step=step, attempt=self._attempt))
        self.uow.flush()
        faults.point("activity:started")

    def record(self, results: Sequence[ActivityResult]) -> None:
        for r in results:
            data = canonical(dict(r.result))
            blob = None
            inline: dict[str, Any] = dict(r.result)
            if len(data) > INLINE_BYTES:
                sha = hashlib.sha256(data).hexdigest()
                ref = self.blobs.write_bytes(
                    artifact_key(self.run_id, BLOB_KIND, f"{sha}.json"), data
                )
                blob = ev.Artifact(
                    kind=BLOB_KIND, uri=ref.uri, sha256=ref.sha256, bytes=ref.bytes, step=r.step
                )
                inline = {}
            self.uow.record(
                ev.ActivityCompleted(
                    key=r.key,
                    kind=r.kind,
                    step=r.step,
                    attempt=self._attempt,
                    result=inline,
                    blob=blob,
                    recovered=r.recovered,
                )
            )
        faults.point("activity:before_commit")
        self.uow.flush()

    @property
    def _attempt(self) -> int:
        return self.uow.state.attempt
