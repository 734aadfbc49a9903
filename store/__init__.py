"""kitchen's event store: the append-only run log in SQLite or Postgres.

Public surface (pinned by a test)::

    open_store(url=None, *, migrate=True, hook=None) -> EventStore
    resolve_db_url(url=None) -> str; check_db_url(url=None); upgrade(url=None) -> str
    current_revision(url=None)
    NewEvent, StoredEvent, RunRow, Lease, VerifyResult, Snapshot
    canonical_json, event_hash, GENESIS_HASH

See docs/store.md for the guarantees (durability, concurrency, tailing) and why.
"""

from kitchen.log_records import (
    Lease,
    NewEvent,
    RunRow,
    Snapshot,
    StoredEvent,
    VerifyResult,
    check_run_id,
)

from ._engine import check_db_url, resolve_db_url
from ._open import current_revision, head_revision, open_store, upgrade
from .canonical import GENESIS_HASH, canonical_json, event_hash
from .event_store import EventStore

__all__ = [
    "GENESIS_HASH",
    "EventStore",
    "Lease",
    "NewEvent",
    "RunRow",
    "Snapshot",
    "StoredEvent",
    "VerifyResult",
    "canonical_json",
    "check_db_url",
    "check_run_id",
    "current_revision",
    "event_hash",
    "head_revision",
    "open_store",
    "resolve_db_url",
    "upgrade",
]
