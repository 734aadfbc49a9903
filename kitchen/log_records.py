"""The records the event store takes and returns, and the run-id rule.

They are frozen dataclasses rather than ORM objects so that callers can hold, compare and
hash them freely without a session, and so that a read costs no more than building a tuple.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kitchen.errors import InvalidRunId
from kitchen.paths import RUN_ID_RULE, valid_run_id


def check_run_id(run_id: object) -> str:
    """Refuse a run id before it reaches SQL: it also names a folder under KITCHEN_HOME."""
    if valid_run_id(run_id):
        assert isinstance(run_id, str)
        return run_id
    raise InvalidRunId(f"invalid run id {run_id!r}: {RUN_ID_RULE}")


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event a caller appends; the store gives it seq, timestamp and hashes."""

    type: str
    payload: dict[str, Any]
    schema_version: int = 1


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as recorded. ``payload_json`` is the exact text that was hashed."""

    position: int
    run_id: str
    seq: int
    type: str
    payload: dict[str, Any]
    payload_json: str
    recorded_at: datetime
    schema_version: int
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A run's folded state at ``seq``, serialised by the fold of ``version``: a cache of the
    fold, never the truth. ``event_hash`` is the hash of the run's event at ``seq``; ``sha256``
    covers run id, version, seq, event hash and state (``canonical.snapshot_hash``)."""

    run_id: str
    version: str
    seq: int
    event_hash: str
    state: str
    sha256: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class RunRow:
    """One row of the ``runs`` projection: a cache of the fold, never the truth."""

    run_id: str
    recipe: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    last_seq: int
    attempts: int
    step: int | None
    parent: str | None = None  # the run it was forked from (kitchen fork), if any


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists on this host (signal 0 probes, sends nothing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass(frozen=True, slots=True)
class Lease:
    """A worker's claim on a run, so that two workers never drive one run at once."""

    run_id: str
    holder: str
    host: str
    pid: int
    attempt: int
    acquired_at: datetime
    expires_at: datetime

    def is_live(self, now: datetime | None = None) -> bool:
        """Unexpired, and its process still exists (which we can only check on our own host).

        A dead holder on this host frees the run at once instead of making the user wait out
        the time-to-live after a crash.
        """
        now = now or datetime.now(UTC)
        if self.expires_at <= now:
            return False
        return self.host != socket.gethostname() or pid_alive(self.pid)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of checking one run's hash chain; ``first_bad_seq`` locates the damage."""

    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str | None
