"""HFHubClient runs the HubClient contract against a hand-built offline cache."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kitchen.adapters.hf_hub import HFHubClient
from kitchen.testing.hub_contract import HubClientContract


class TestHFHubClient(HubClientContract):
    __test__ = True

    @pytest.fixture
    def make_client(self) -> Callable[[str | None], HFHubClient]:
        return HFHubClient
