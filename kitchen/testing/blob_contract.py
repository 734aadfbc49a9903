"""The BlobStore contract, written once and run by every blob store.

Subclass ``BlobStoreContract`` and override the ``store`` fixture. URIs are treated as
opaque: every check goes through the URIs the store itself hands out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from kitchen.errors import ConfigError, NotFound
from kitchen.ports import BlobRef, BlobStore

HELLO_SHA256 = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"  # b"hello\n"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # b""


def fill_two_files(folder: Path) -> None:
    (folder / "a.txt").write_bytes(b"hello\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "b.bin").write_bytes(b"\x00\x01")


def fill_one(name: str, data: bytes) -> Callable[[Path], None]:
    def fill(folder: Path) -> None:
        (folder / name).write_bytes(data)

    return fill


class BlobStoreContract:
    __test__ = False

    @pytest.fixture
    def store(self) -> BlobStore:
        raise NotImplementedError("override the store fixture")

    def test_satisfies_the_port(self, store: BlobStore) -> None:
        assert isinstance(store, BlobStore)

    def test_write_bytes_round_trip(self, store: BlobStore) -> None:
        ref = store.write_bytes("run-1/meta.txt", b"hello\n")
        assert (ref.sha256, ref.bytes) == (HELLO_SHA256, 6)
        assert store.exists(ref.uri)
        assert store.read_bytes(ref.uri) == b"hello\n"
        assert store.local_path(ref.uri).read_bytes() == b"hello\n"
        assert store.verify(ref)

    def test_write_dir_digest_follows_the_documented_scheme(self, store: BlobStore) -> None:
        ref = store.write_dir("run-1/checkpoints/step-000010", fill_two_files)
        b_sha = hashlib.sha256(b"\x00\x01").hexdigest()
        manifest = f"{HELLO_SHA256}  a.txt\n{b_sha}  sub/b.bin\n"
        assert ref.sha256 == hashlib.sha256(manifest.encode()).hexdigest()
        assert ref.bytes == 8
        assert store.verify(ref)

    def test_write_dir_round_trip(self, store: BlobStore) -> None:
        ref = store.write_dir("run-1/checkpoints/step-000010", fill_two_files)
        folder = store.local_path(ref.uri)
        assert (folder / "a.txt").read_bytes() == b"hello\n"
        assert (folder / "sub" / "b.bin").read_bytes() == b"\x00\x01"

    def test_empty_folder_blob(self, store: BlobStore) -> None:
        ref = store.write_dir("run-1/empty", lambda folder: None)
        assert (ref.sha256, ref.bytes) == (EMPTY_SHA256, 0)
        assert store.exists(ref.uri) and store.verify(ref)

    def test_overwrite_replaces_the_whole_folder(self, store: BlobStore) -> None:
        old = store.write_dir("run-1/ckpt", fill_two_files)
        new = store.write_dir("run-1/ckpt", fill_one("c.txt", b"new\n"))
        assert new.uri == old.uri
        names = sorted(p.name for p in store.local_path(new.uri).rglob("*") if p.is_file())
        assert [n for n in names if not n.startswith(".")] == ["c.txt"]
        assert store.verify(new) and not store.verify(old)

    def test_failed_fill_keeps_the_old_blob_and_leaves_no_trace(self, store: BlobStore) -> None:
        old = store.write_dir("run-1/ckpt", fill_two_files)

        def broken(folder: Path) -> None:
            (folder / "half.bin").write_bytes(b"\x00" * 10)
            raise RuntimeError("disk full")

        with pytest.raises(RuntimeError, match="disk full"):
            store.write_dir("run-1/ckpt", broken)
        assert store.verify(old)
        assert list(store.list("run-1/")) == [old.uri]

    def test_write_bytes_replaces_a_folder_blob(self, store: BlobStore) -> None:
        store.write_dir("run-1/x", fill_two_files)
        ref = store.write_bytes("run-1/x", b"hello\n")
        assert store.read_bytes(ref.uri) == b"hello\n"
        assert list(store.list("run-1/")) == [ref.uri]

    def test_verify_rejects_wrong_digest_size_or_deleted_blob(self, store: BlobStore) -> None:
        ref = store.write_bytes("run-1/meta.txt", b"hello\n")
        assert not store.verify(BlobRef(ref.uri, EMPTY_SHA256, ref.bytes))
        assert not store.verify(BlobRef(ref.uri, ref.sha256, ref.bytes + 1))
        store.delete(ref.uri)
        assert not store.verify(ref)

    def test_list_returns_whole_blobs_under_a_prefix(self, store: BlobStore) -> None:
        s10 = store.write_dir("run-1/checkpoints/step-000010", fill_two_files)
        s20 = store.write_dir("run-1/checkpoints/step-000020", fill_two_files)
        meta = store.write_bytes("run-1/meta.txt", b"hello\n")
        other = store.write_bytes("run-2/meta.txt", b"hello\n")
        assert list(store.list("run-1/")) == [s10.uri, s20.uri, meta.uri]
        assert list(store.list("run-1/checkpoints/step-")) == [s10.uri, s20.uri]
        assert list(store.list("run-3/")) == []
        assert set(store.list()) >= {s10.uri, s20.uri, meta.uri, other.uri}

    def test_delete_removes_files_and_folders_and_tolerates_repeats(self, store: BlobStore) -> None:
        folder = store.write_dir("run-1/ckpt", fill_two_files)
        file = store.write_bytes("run-1/meta.txt", b"hello\n")
        for ref in (folder, file):
            store.delete(ref.uri)
            assert not store.exists(ref.uri)
            store.delete(ref.uri)
        assert list(store.list("run-1/")) == []

    def test_missing_blob_is_not_found(self, store: BlobStore) -> None:
        ref = store.write_bytes("run-1/meta.txt", b"x")
        store.delete(ref.uri)
        with pytest.raises(NotFound):
            store.read_bytes(ref.uri)
        with pytest.raises(NotFound):
            store.local_path(ref.uri)

    def test_reading_a_folder_as_bytes_is_refused(self, store: BlobStore) -> None:
        ref = store.write_dir("run-1/ckpt", fill_two_files)
        with pytest.raises(ConfigError, match="folder"):
            store.read_bytes(ref.uri)

    @pytest.mark.parametrize("key", ["", "/abs/x", "../x", "a/../b", "a//b", "a/./b", "a\\b"])
    def test_unsafe_keys_are_refused(self, store: BlobStore, key: str) -> None:
        with pytest.raises(ConfigError, match="blob key"):
            store.write_bytes(key, b"x")

    def test_keys_cannot_nest_inside_a_blob(self, store: BlobStore) -> None:
        store.write_dir("run-1/ckpt", fill_two_files)
        with pytest.raises(ConfigError, match="inside blob 'run-1/ckpt'"):
            store.write_bytes("run-1/ckpt/extra.txt", b"x")

    def test_fill_may_not_use_the_marker_name_or_symlinks(self, store: BlobStore) -> None:
        with pytest.raises(ConfigError, match="kitchen-blob"):
            store.write_dir("run-1/a", fill_one(".kitchen-blob", b"{}"))

        def linking(folder: Path) -> None:
            (folder / "real.txt").write_bytes(b"x")
            (folder / "link.txt").symlink_to("real.txt")

        with pytest.raises(ConfigError, match=r"symlink 'link\.txt'"):
            store.write_dir("run-1/b", linking)
        assert list(store.list("run-1/")) == []
