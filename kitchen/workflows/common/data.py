"""Rows for any workflow: the training split and the held-out rows, and the chat-shaped
columns the built-in workflows read."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kitchen.errors import ConfigError
from kitchen.ports import DatasetStore
from kitchen.stage_api import StageContext, StageResult
from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.common.resources import TrainingResources


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


def load_rows(
    ctx: StageContext[TrainingConfig, TrainingResources],
    columns: Sequence[str],
    check_held_out: Callable[[str, int, Mapping[str, Any]], None] | None = None,
) -> StageResult:
    """A ``load_dataset`` stage: the training and held-out rows of ``config.dataset`` into
    the resources. Launch checked the training rows before the run existed; with
    ``check_held_out`` the held-out rows are checked here, so a bad one fails the run in one
    line naming its row."""
    cfg = ctx.config
    train, test = train_and_test(ctx.ports.datasets, cfg.dataset, cfg.test_size, columns)
    if check_held_out is not None:
        for i, row in enumerate(test):
            check_held_out(f"{cfg.dataset} (held-out)", i, row)
    ctx.resources.train_rows = train
    ctx.resources.test_rows = test
    return StageResult({"train_rows": len(train), "test_rows": len(test), "dataset": cfg.dataset})


def check_chat(source: str, index: int, row: Mapping[str, Any], column: str) -> None:
    """``row[column]`` is a non-empty list of ``{'role': str, 'content': str}``."""
    messages = row.get(column)
    ok = isinstance(messages, list) and bool(messages)
    for m in messages if isinstance(messages, list) else ():
        if not (
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
        ):
            ok = False
            break
    if not ok:
        raise ConfigError(
            f"{source}: row {index}: {column!r} must be a non-empty list of "
            "{'role': str, 'content': str}; fix or drop that row"
        )
