"""Rows for any workflow: the training split and the held-out rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kitchen.errors import ConfigError
from kitchen.ports import DatasetStore


def train_and_test(
    store: DatasetStore, source: str, test_size: int, columns: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Training rows and held-out rows (the ``test`` split, or the last ``test_size`` rows)."""
    train = list(store.load(source, "train", columns=columns))
    try:
        test = list(store.load(source, "test", columns=columns))
    except ConfigError:
        if len(train) <= test_size:
            raise ConfigError(
                f"dataset {source!r} has no 'test' split and only {len(train)} rows; "
                f"lower test_size (now {test_size}) or add a test split"
            ) from None
        train, test = train[:-test_size], train[-test_size:]
    return train, test
