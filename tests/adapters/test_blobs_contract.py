"""The local blob store runs the blob contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.testing.blob_contract import BlobStoreContract


class TestLocalBlobStore(BlobStoreContract):
    __test__ = True

    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalBlobStore:
        return LocalBlobStore(tmp_path / "home")
