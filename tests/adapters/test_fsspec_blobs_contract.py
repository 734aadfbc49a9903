"""The fsspec blob store runs the blob contract: on fsspec's in-memory filesystem (fast) and on
a local S3-compatible server (moto) through s3fs, as on a real bucket."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitchen.adapters.fsspec_blobs import FsspecBlobStore
from kitchen.errors import BlobStoreUnavailable
from kitchen.testing.blob_contract import BlobStoreContract, fill_two_files
from kitchen.testing.s3 import MotoS3


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[MotoS3]:
    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    return moto_s3


class TestMemoryBlobStore(BlobStoreContract):
    __test__ = True

    @pytest.fixture
    def store(self, tmp_path: Path) -> FsspecBlobStore:
        store = FsspecBlobStore(f"memory://kitchen-{uuid.uuid4().hex}/blobs", tmp_path / "cache")
        store.check_usable()  # as a run's launch does: a store without buckets makes its root
        return store


class TestS3BlobStore(BlobStoreContract):
    __test__ = True

    @pytest.fixture
    def store(self, tmp_path: Path, s3_env: MotoS3) -> FsspecBlobStore:
        bucket = f"kitchen-{uuid.uuid4().hex[:12]}"
        s3_env.make_bucket(bucket)
        return FsspecBlobStore(f"s3://{bucket}/runs", tmp_path / "cache")


def test_a_bucket_gone_is_a_fault_never_a_missing_blob(tmp_path: Path, s3_env: MotoS3) -> None:
    bucket = f"kitchen-{uuid.uuid4().hex[:12]}"
    s3_env.make_bucket(bucket)
    store = FsspecBlobStore(f"s3://{bucket}/runs", tmp_path / "cache")
    ref = store.write_dir("run-1/ckpt", fill_two_files)
    store.fs.rm(bucket, recursive=True)  # the objects, then the bucket
    gone = f"blob store s3://{bucket}/runs: '{bucket}' is not there"
    with pytest.raises(BlobStoreUnavailable, match=gone):
        store.verify(ref)
    with pytest.raises(BlobStoreUnavailable, match=gone):
        store.exists(ref.uri)
    with pytest.raises(BlobStoreUnavailable, match=r"writing blob 'run-1/meta\.txt' failed"):
        store.write_bytes("run-1/meta.txt", b"x")
