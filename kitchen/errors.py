"""The errors kitchen raises on purpose, and the exit code each maps to.

Hierarchy::

    KitchenError                      exit 1 unless a subclass says otherwise
    ├── InfrastructureError           exit 1  a fault outside the run: disk full, a database or
    │                                         service unreachable past its retries (the run
    │                                         itself is sound; StoreUnavailable is one too)
    ├── ConfigError                   exit 2  bad recipe, key, value, file
    ├── NotFound                      exit 2  unknown run id, recipe, checkpoint, dataset
    ├── StoreError                    exit 2  the event store refused or failed
    │   ├── InvalidRunId              exit 2  run id outside [A-Za-z0-9][A-Za-z0-9._-]{0,63}
    │   ├── StoreUnavailable          exit 2  database unreachable / not a database
    │   ├── SchemaMismatch            exit 2  database revision older (Postgres) or newer than code
    │   ├── IntegrityViolation        exit 1  hash chain or contiguity broken
    │   └── ConcurrencyConflict       exit 3  the expected seq was already taken
    ├── LeaseHeld                     exit 3  another live worker holds the run
    ├── IllegalTransition             exit 1  a trigger the machine does not allow from its state
    ├── EventSchemaError              exit 1  an event of an unknown type or newer schema_version
    ├── CheckpointCorrupt             exit 1  a checkpoint blob is missing or fails its sha256
    ├── TrainingDiverged              exit 1  NaN or infinite loss
    └── OfflineMiss                   exit 2  a hub file or dataset not cached, no network

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; it never
shows a traceback for these. Messages say what went wrong and how to fix it.
"""

from __future__ import annotations


class KitchenError(Exception):
    exit_code: int = 1


class InfrastructureError(KitchenError):
    """A fault outside the run, as opposed to an error of the run itself (bad data, a diverged
    loss, a config the backend refuses). Adapters raise it for what they cannot fix by
    retrying: a full disk, a database or remote service that stays unreachable."""

    exit_code = 1


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
    "CheckpointCorrupt",
    "ConcurrencyConflict",
    "ConfigError",
    "EventSchemaError",
    "IllegalTransition",
    "InfrastructureError",
    "IntegrityViolation",
    "InvalidRunId",
    "KitchenError",
    "LeaseHeld",
    "NotFound",
    "OfflineMiss",
    "SchemaMismatch",
    "StoreError",
    "StoreUnavailable",
    "TrainingDiverged",
]
