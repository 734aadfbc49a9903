"""load_dataset: read the training rows and the held-out rows through the DatasetStore."""

from __future__ import annotations

from typing import Any

from kitchen.adapters import registry


def run(ctx: Any) -> dict[str, Any]:
    cfg = ctx.config
    store = registry.dataset_store(cfg.dataset_adapter)
    train, test = registry.train_and_test(store, cfg)
    ctx.resources.train_rows = train
    ctx.resources.test_rows = test
    return {"train_rows": len(train), "test_rows": len(test), "dataset": cfg.dataset}
