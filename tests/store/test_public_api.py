"""The names other code imports from kitchen.store: changing them is a breaking change."""

from __future__ import annotations

import subprocess
import sys

import kitchen.store


def test_public_names_are_pinned() -> None:
    assert sorted(kitchen.store.__all__) == [
        "EventStore",
        "GENESIS_HASH",
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
    for name in kitchen.store.__all__:
        assert hasattr(kitchen.store, name), name


def test_importing_the_store_stays_light() -> None:
    code = (
        "import sys, kitchen.store; "
        "heavy = {'torch', 'transformers', 'datasets', 'peft', 'alembic'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
