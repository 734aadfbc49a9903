"""The Tinker adapter: kitchen's training, sampling and factory ports over the official
``tinker`` SDK (``pip install 'kitchen-posttrain[tinker]'``).

Selected by configuration alone (``adapters.training=tinker``); the service is named by
``TINKER_BASE_URL`` and the key by ``TINKER_API_KEY``, which only the SDK ever reads.
"""

from __future__ import annotations

from kitchen.adapters.tinker.service import TinkerServiceClient, create_service

__all__ = ["TinkerServiceClient", "create_service"]
