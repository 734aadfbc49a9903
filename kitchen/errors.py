"""The errors kitchen raises on purpose, and the exit code each maps to.

Hierarchy::

    KitchenError                      exit 1 unless a subclass says otherwise
    ├── InfrastructureError           exit 75 a fault outside the run: disk full (ENOSPC,
    │                                         EDQUOT), a remote service unreachable past its
    │                                         retries. The run itself is sound: the attempt
    │                                         ends resumable, never ``failed``
    │   ├── DiskFull                  exit 75 ENOSPC / EDQUOT while writing a file or the
    │   │                                     database (SQLite's "disk is full", Postgres 53100)
    │   ├── ReadOnlyStorage           exit 75 EROFS: the filesystem (or database) takes no writes
    │   ├── StorageIOError            exit 75 EIO: the device failed a read or a write
    │   ├── BlobStoreUnavailable      exit 75 the run's recorded blob store is unreachable
    │   ├── OutOfMemory               exit 71 the backend ran out of memory: resumable once an
    │   │                                     operating setting (micro-batch size …) changed
    │   ├── ServiceUnavailable        exit 75 a remote service unreachable past its retries
    │   └── PeerLost                  exit 75 another process of the run did not answer a
    │                                         collective within KITCHEN_DIST_TIMEOUT_S
    ├── ConfigError                   exit 2  bad recipe, key, value, file
    ├── NotFound                      exit 2  unknown run id, recipe, checkpoint, dataset
    ├── StoreError                    exit 2  the event store refused or failed
    │   ├── InvalidRunId              exit 2  run id outside [A-Za-z0-9][A-Za-z0-9._-]{0,63}
    │   ├── StoreUnavailable          exit 2  database unreachable / not a database, when a
    │   │                                     command opens it (nothing has started); also an
    │   │                                     InfrastructureError: past the retry budget in
    │   │                                     the middle of an attempt, the attempt ends
    │   │                                     resumable with exit 75
    │   ├── SchemaMismatch            exit 2  database revision older (Postgres) or newer than code
    │   ├── IntegrityViolation        exit 1  hash chain or contiguity broken
    │   └── ConcurrencyConflict       exit 3  the expected seq was already taken
    ├── LeaseHeld                     exit 3  another live worker holds the run
    ├── IllegalTransition             exit 1  a trigger the machine does not allow from its state
    ├── EventSchemaError              exit 1  an event of an unknown type or newer schema_version
    ├── CheckpointCorrupt             exit 1  a checkpoint blob is missing or fails its sha256
    ├── TrainingDiverged              exit 1  NaN or infinite loss
    ├── RanksDiverged                 exit 1  the processes of one run hold different weights
    └── OfflineMiss                   exit 2  a hub file or dataset not cached, no network

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; it never
shows a traceback for these. Messages say what went wrong and how to fix it.

Exit 75 is ``EX_TEMPFAIL`` from ``sysexits.h``: try again later. The runner catches an
``InfrastructureError`` (``StoreUnavailable`` included) wherever it arises in an attempt, ends
the attempt with ``AttemptInterrupted`` naming the fault (when the log can still be written)
and exits 75; ``kitchen resume`` continues once the fault is gone. Errors of the run itself (a
diverged loss, bad data, a config the backend refuses) stay terminal: ``RunFailed``, exit 1.
A full, read-only or failing disk arrives in the words of whichever library was writing
(safetensors, torch, SQLite, Postgres …): ``kitchen.engine.io_faults`` reads them into ``DiskFull``,
``ReadOnlyStorage`` or ``StorageIOError``.
"""

from __future__ import annotations

import errno

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The ``OSError`` numbers that mean the disk or the user's quota is full: ``DiskFull``."""


class KitchenError(Exception):
    exit_code: int = 1


class InfrastructureError(KitchenError):
    """A fault outside the run, as opposed to an error of the run itself (bad data, a diverged
    loss, a config the backend refuses). Adapters raise it for what they cannot fix by
    retrying: a full disk, a database or remote service that stays unreachable.

    ``fault`` names the kind for the event log (``AttemptInterrupted.fault``); the
    subclasses below say which."""

    exit_code = 75
    fault: str = "infrastructure"


class DiskFull(InfrastructureError):
    """ENOSPC or EDQUOT while writing a checkpoint, metrics, weights or any other file."""

    fault = "disk_full"


class ReadOnlyStorage(InfrastructureError):
    """EROFS: the filesystem holding the run's files was remounted read-only (or the database
    refuses writes: SQLite's "readonly database", a Postgres that only accepts reads)."""

    fault = "read_only"


class StorageIOError(InfrastructureError):
    """EIO: the device failed a read or a write (SQLite's "disk I/O error", Postgres 58030)."""

    fault = "io_error"


class OutOfMemory(InfrastructureError):
    """The backend ran out of memory (a CPU allocator failure, ``MemoryError``, CUDA out of
    memory). The attempt ends as a fault of its own (``fault: out_of_memory``, exit 71): the
    run is sound and resumable, but not with the same operating settings, which would fail the
    same way, so a resume that changes none of them is refused. The message says what to lower
    (``max_tokens_per_microbatch``, or turn on ``gradient_checkpointing``)."""

    exit_code = 71  # sysexits.h EX_OSERR
    fault = "out_of_memory"


class BlobStoreUnavailable(InfrastructureError):
    """The run's recorded blob store cannot be reached (its folder or mount is missing, its
    server does not answer): never a reason to invalidate a checkpoint."""

    fault = "blob_store_unavailable"


class ServiceUnavailable(InfrastructureError):
    """A remote service (the Tinker API) unreachable or failing past its client's retries."""

    fault = "service_unavailable"


class PeerLost(InfrastructureError):
    """Another process of a run on several processes (``torchrun``) died or stopped answering:
    a collective did not complete within ``KITCHEN_DIST_TIMEOUT_S``."""

    fault = "peer_lost"


class RanksDiverged(KitchenError):
    """The processes of one run hold different weights or optimizer state (their digests at a
    checkpoint differ): the run fails rather than go on training different models."""


class ConfigError(KitchenError):
    exit_code = 2


class NotFound(KitchenError):
    exit_code = 2


class StoreError(KitchenError):
    exit_code = 2


class InvalidRunId(StoreError, ValueError):
    exit_code = 2


class StoreUnavailable(StoreError, InfrastructureError):
    exit_code = 2
    fault = "store_unavailable"


class SchemaMismatch(StoreError):
    exit_code = 2


class IntegrityViolation(StoreError):
    exit_code = 1


class ConcurrencyConflict(StoreError):
    exit_code = 3


class LeaseHeld(KitchenError):
    exit_code = 3


class IllegalTransition(KitchenError):
    exit_code = 1


class EventSchemaError(KitchenError):
    exit_code = 1


class CheckpointCorrupt(KitchenError):
    exit_code = 1


class TrainingDiverged(KitchenError):
    exit_code = 1


class OfflineMiss(KitchenError):
    exit_code = 2


__all__ = [
    "DISK_FULL_ERRNOS",
    "CheckpointCorrupt",
    "ConcurrencyConflict",
    "ConfigError",
    "DiskFull",
    "EventSchemaError",
    "IllegalTransition",
    "InfrastructureError",
    "IntegrityViolation",
    "InvalidRunId",
    "KitchenError",
    "LeaseHeld",
    "NotFound",
    "OfflineMiss",
    "ReadOnlyStorage",
    "SchemaMismatch",
    "ServiceUnavailable",
    "StorageIOError",
    "StoreError",
    "StoreUnavailable",
    "TrainingDiverged",
]
