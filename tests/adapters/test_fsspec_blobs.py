"""What a writer killed half-way leaves on an fsspec store: invisible until swept."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitchen.adapters.blobs import FsspecBlobStore
from kitchen.testing.blob_contract import fill_two_files


@pytest.fixture
def base() -> Iterator[str]:
    import fsspec

    url = f"memory://kitchen-test-{uuid.uuid4().hex}"
    yield url
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url, recursive=True)


def test_a_folder_without_its_marker_is_not_a_blob(base: str, tmp_path: Path) -> None:
    import fsspec

    store = FsspecBlobStore(base, cache_dir=tmp_path)
    ref = store.write_dir("run-1/ckpt", fill_two_files)
    fs = fsspec.filesystem("memory")
    fs.rm_file(f"{base}/run-1/ckpt/.kitchen-blob")
    assert not store.exists(ref.uri) and not store.verify(ref)
    assert ref.uri not in list(store.list("run-1/"))


def test_leftover_uploads_are_ignored_then_swept(base: str, tmp_path: Path) -> None:
    import fsspec

    store = FsspecBlobStore(base, cache_dir=tmp_path)
    ref = store.write_dir("run-1/ckpt", fill_two_files)
    leftover = f"run-1/.ckpt.kitchen-tmp-{'b' * 32}"
    fsspec.filesystem("memory").pipe_file(f"{base}/{leftover}/a.txt", b"torn")
    assert list(store.list("run-1/")) == [ref.uri]
    assert store.sweep_temp("run-2/") == []
    assert store.sweep_temp("run-1/") == [leftover]
    assert list(store.list()) == [ref.uri] and store.verify(ref)


def test_local_path_is_a_fresh_copy(base: str, tmp_path: Path) -> None:
    store = FsspecBlobStore(base, cache_dir=tmp_path)
    ref = store.write_dir("run-1/ckpt", fill_two_files)
    copy = store.local_path(ref.uri)
    (copy / "a.txt").write_bytes(b"changed")
    assert store.verify(ref)
    assert (store.local_path(ref.uri) / "a.txt").read_bytes() == b"hello\n"
