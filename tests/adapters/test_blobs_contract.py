"""Every blob store runs the same contract: the local folder, fsspec memory and file URLs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitchen.adapters.blobs import FsspecBlobStore, LocalBlobStore
from kitchen.testing.blob_contract import BlobStoreContract


class TestLocalBlobStore(BlobStoreContract):
    __test__ = True

    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalBlobStore:
        return LocalBlobStore(tmp_path / "home")


class TestFsspecMemoryBlobStore(BlobStoreContract):
    __test__ = True

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[FsspecBlobStore]:
        import fsspec

        base = f"memory://kitchen-test-{uuid.uuid4().hex}"
        yield FsspecBlobStore(base, cache_dir=tmp_path / "cache")
        fs = fsspec.filesystem("memory")
        if fs.exists(base):
            fs.rm(base, recursive=True)


class TestFsspecFileBlobStore(BlobStoreContract):
    __test__ = True

    @pytest.fixture
    def store(self, tmp_path: Path) -> FsspecBlobStore:
        return FsspecBlobStore((tmp_path / "home").as_uri())
