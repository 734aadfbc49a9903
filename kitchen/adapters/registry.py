"""Adapters by name: what a recipe's adapters manifest and config keys refer to.

Swapping an adapter is configuration (``training_adapter=…``, ``dataset_adapter=…``): each name
maps to a factory that is imported only when used, so listing recipes or replaying a run never
imports the training stack.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from kitchen.errors import ConfigError

TRAINING = {"local_torch": "kitchen.adapters.local_torch:create_training_client"}
DATASETS = {"hf_datasets": "kitchen.adapters.hf_datasets:HFDatasetStore"}
BLOBS = {"local": "kitchen.adapters.blobs:LocalBlobStore"}


def _factory(table: dict[str, str], kind: str, name: str) -> Any:
    target = table.get(name)
    if target is None:
        raise ConfigError(f"unknown {kind} adapter {name!r}; known: {', '.join(sorted(table))}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def check(kind: str, name: str) -> None:
    """Validate an adapter name without importing it."""
    table = {"training": TRAINING, "dataset": DATASETS, "blob": BLOBS}[kind]
    if name not in table:
        raise ConfigError(f"unknown {kind} adapter {name!r}; known: {', '.join(sorted(table))}")


def dataset_store(name: str) -> Any:
    return _factory(DATASETS, "dataset", name)()


def blob_store(name: str, home: Path) -> Any:
    return _factory(BLOBS, "blob", name)(home)


def training_client(cfg: Any) -> Any:
    create = _factory(TRAINING, "training", cfg.training_adapter)
    return create(
        model_name=cfg.model_name,
        lora_rank=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        device=cfg.device,
        dtype=cfg.dtype,
        seed=cfg.seed,
    )


def train_and_test(store: Any, cfg: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Training rows and held-out rows (the ``test`` split, or the last ``test_size`` rows)."""
    train = list(store.load(cfg.dataset, "train", columns=("messages",)))
    try:
        test = list(store.load(cfg.dataset, "test", columns=("messages",)))
    except ConfigError:
        if len(train) <= cfg.test_size:
            raise ConfigError(
                f"dataset {cfg.dataset!r} has no 'test' split and only {len(train)} rows; "
                f"lower test_size (now {cfg.test_size}) or add a test split"
            ) from None
        train, test = train[: -cfg.test_size], train[-cfg.test_size :]
    return train, test
