"""How one event changes a run's row in the ``runs`` projection.

One pure function, used both by incremental appends and by ``rebuild_projections``, so the
two can never disagree. The engine's fold follows the same status rules.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from kitchen.log_records import RunRow

_STATUS_OF = {
    "RunCreated": "created",
    "AttemptStarted": "running",
    "AttemptInterrupted": "interrupted",
    "RunCompleted": "completed",
    "RunFailed": "failed",
    "RunCancelled": "cancelled",
}


def changes(type: str, payload: dict[str, Any], seq: int, recorded_at: datetime) -> dict[str, Any]:
    """The columns one event sets. Every rule sets an absolute value, so the effect of a batch
    is the merge of its events' changes, whatever the row held before."""
    out: dict[str, Any] = {"last_seq": seq, "updated_at": recorded_at}
    if type in _STATUS_OF:
        out["status"] = _STATUS_OF[type]
    if type == "RunCreated":
        out["recipe"] = payload.get("recipe")
        out["created_at"] = recorded_at
        fork = payload.get("fork")
        out["parent"] = fork.get("run_id") if isinstance(fork, dict) else None
    elif type == "AttemptStarted" and _is_int(payload.get("attempt")):
        out["attempts"] = payload["attempt"]
    step = payload.get("from_step") if type == "RunResumed" else payload.get("step")
    if _is_int(step):
        out["step"] = step
    return out


def initial_row(run_id: str, recorded_at: datetime) -> RunRow:
    """A run's row before its first event is applied."""
    return RunRow(run_id, None, "created", recorded_at, recorded_at, 0, 0, None)


def project(row: RunRow, type: str, payload: dict[str, Any], seq: int, at: datetime) -> RunRow:
    """The run's row after one more event."""
    return replace(row, **changes(type, payload, seq, at))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
