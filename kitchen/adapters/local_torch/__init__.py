"""The local torch backend: LoRA training and sampling on this machine (CPU or CUDA).

Importing this package is cheap; torch, transformers and peft load when a client is made,
so a recipe can name the backend without paying for it until it trains. See docs/backend.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from kitchen.adapters.local_torch.client import LocalTrainingClient
    from kitchen.adapters.local_torch.sampling import LocalSamplingClient


def create_training_client(**kwargs: Any) -> LocalTrainingClient:
    """Build a LocalTrainingClient from keyword settings (a recipe's config, as data)."""
    from kitchen.adapters.local_torch.client import LocalTrainingClient

    return LocalTrainingClient(**kwargs)


def __getattr__(name: str) -> Any:
    if name == "LocalTrainingClient":
        from kitchen.adapters.local_torch.client import LocalTrainingClient

        return LocalTrainingClient
    if name == "LocalSamplingClient":
        from kitchen.adapters.local_torch.sampling import LocalSamplingClient

        return LocalSamplingClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LocalSamplingClient", "LocalTrainingClient", "create_training_client"]
