"""HFDatasetStore runs the DatasetStore contract on local files and an offline HF cache."""

from __future__ import annotations

import pytest

from kitchen.adapters.hf_datasets import HFDatasetStore
from kitchen.testing.dataset_contract import DatasetStoreContract


class TestHFDatasetStore(DatasetStoreContract):
    __test__ = True

    @pytest.fixture
    def dataset_store(self) -> HFDatasetStore:
        return HFDatasetStore()
