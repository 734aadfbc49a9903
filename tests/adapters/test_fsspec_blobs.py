"""What the fsspec blob store does beyond the shared contract: publication without a rename,
the download cache and its checks, storage failures as faults, and the store a run records."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.adapters.fsspec_blobs import FsspecBlobStore
from kitchen.engine import launch, registry
from kitchen.errors import BlobStoreUnavailable, ConfigError, NotFound
from kitchen.ports import BlobRef
from kitchen.recipes import load_recipe
from kitchen.testing.blob_contract import fill_one, fill_two_files
from kitchen.testing.s3 import free_port


@pytest.fixture
def store(tmp_path: Path) -> FsspecBlobStore:
    made = FsspecBlobStore(f"memory://kitchen-{uuid.uuid4().hex}/blobs", tmp_path / "cache")
    made.check_usable()
    return made


def _gen_files(store: FsspecBlobStore, key: str) -> list[str]:
    found = store.fs.find(f"{store.root}/{key}", withdirs=False)
    return sorted(p.split(f"{key}/", 1)[1] for p in found)


def test_a_folder_is_a_generation_and_a_marker_naming_it(store: FsspecBlobStore) -> None:
    ref = store.write_dir("run-1/ckpt", fill_two_files)
    marker = store._marker("run-1/ckpt")
    assert marker is not None
    gen = marker["generation"]
    assert gen.startswith(".data.kitchen-gen-")
    assert (marker["sha256"], marker["bytes"]) == (ref.sha256, ref.bytes)
    assert _gen_files(store, "run-1/ckpt") == [f"{gen}/a.txt", f"{gen}/sub/b.bin", ".kitchen-blob"]
    store.write_dir("run-1/ckpt", fill_one("c.txt", b"new\n"))
    new_gen = store._marker("run-1/ckpt")["generation"]  # type: ignore[index]
    assert _gen_files(store, "run-1/ckpt") == [f"{new_gen}/c.txt", ".kitchen-blob"]


def test_an_upload_cut_short_leaves_the_old_blob_and_a_generation_the_sweep_removes(
    store: FsspecBlobStore,
) -> None:
    old = store.write_dir("run-1/ckpt", fill_two_files)
    orphan = ".data.kitchen-gen-" + "0" * 32
    store.fs.pipe_file(f"{store.root}/run-1/ckpt/{orphan}/a.txt", b"half")
    assert store.verify(old)
    assert list(store.list("run-1/")) == ["run-1/ckpt"]
    assert (store.local_path(old.uri) / "a.txt").read_bytes() == b"hello\n"
    assert store.sweep_temp("run-1/", older_than_s=3600) == []  # too young to be a dead writer's
    assert store.sweep_temp("run-1/") == [f"run-1/ckpt/{orphan}"]
    assert store.verify(old)
    assert orphan not in "".join(_gen_files(store, "run-1/ckpt"))


def test_a_blob_downloaded_hashes_as_the_local_store_hashes_it(store: FsspecBlobStore) -> None:
    ref = store.write_dir("run-1/ckpt", fill_two_files)
    assert LocalBlobStore.hash_path(store.local_path(ref.uri)) == (ref.sha256, ref.bytes)


def test_reads_check_the_download_and_reuse_a_sound_cached_copy(
    store: FsspecBlobStore, tmp_path: Path
) -> None:
    ref = store.write_dir("run-1/ckpt", fill_two_files)
    first = store.local_path(ref.uri)
    (first / "a.txt").write_bytes(b"tampered\n")  # the cached copy spoiled: downloaded again
    again = store.local_path(ref.uri)
    assert again == first and (again / "a.txt").read_bytes() == b"hello\n"
    gen = store._marker(ref.uri)["generation"]  # type: ignore[index]
    store.fs.pipe_file(f"{store.root}/run-1/ckpt/{gen}/a.txt", b"HELLO\n")  # the remote spoiled
    assert store.verify(ref)  # this machine's sound copy is what it loads
    other = FsspecBlobStore(store.url, tmp_path / "other-cache")  # another machine downloads
    assert not other.verify(ref)
    with pytest.raises(NotFound, match="does not match its marker"):
        other.local_path(ref.uri)


def test_an_unreachable_endpoint_is_a_fault_never_a_missing_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own setting: no retries to wait for
    store = FsspecBlobStore("s3://bucket/runs", tmp_path / "cache")
    with pytest.raises(BlobStoreUnavailable, match="blob store s3://bucket/runs"):
        store.verify(BlobRef("run-1/ckpt", "0" * 64, 1))
    with pytest.raises(BlobStoreUnavailable, match=r"checking blob key 'run-1/meta\.txt' failed"):
        store.write_bytes("run-1/meta.txt", b"x")


def test_readers_build_the_store_the_run_recorded_whatever_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITCHEN_BLOBS_URL", str(tmp_path / "elsewhere"))
    home = tmp_path / "home"
    local = registry.run_blob_store({}, {"adapter": "local"}, home)
    assert isinstance(local, LocalBlobStore) and local.root == home
    folder = registry.run_blob_store({}, {"adapter": "local", "root": "/data/blobs"}, home)
    assert folder.root == Path("/data/blobs") and folder.location() == {"root": "/data/blobs"}
    url = "memory://bucket/runs"
    remote = registry.run_blob_store({}, {"adapter": "fsspec", "url": url}, home)
    assert isinstance(remote, FsspecBlobStore) and remote.location() == {"url": url}
    assert remote.cache.parent == home / ".blob-cache"


@pytest.mark.parametrize(
    ("setting", "adapter", "location"),
    [
        (None, "local", {}),
        ("s3://bucket/runs/", "fsspec", {"url": "s3://bucket/runs"}),
        ("/data/blobs", "local", {"root": "/data/blobs"}),
    ],
)
def test_the_setting_picks_a_new_runs_store(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    setting: str | None,
    adapter: str,
    location: dict[str, str],
) -> None:
    if setting is None:
        monkeypatch.delenv("KITCHEN_BLOBS_URL", raising=False)
    else:
        monkeypatch.setenv("KITCHEN_BLOBS_URL", setting)
    recipe = load_recipe("sl_basic")
    manifest = launch.manifest_of(recipe, None)
    assert manifest["blobs"] == adapter
    store = registry.build_blob_store(adapter, None, tmp_path / "home")
    assert store.location() == location


def test_a_url_holding_credentials_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"holds credentials \(USER:SECRET@…\)"):
        FsspecBlobStore("s3://KEY:SECRET@bucket/runs", tmp_path / "cache")
