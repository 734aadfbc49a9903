"""What only the local blob store promises: movable URIs, the shell-checkable digest,
and that a writer killed half-way leaves the old blob intact or nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.testing.blob_contract import fill_two_files

KEY = "run-1/checkpoints/step-000010"

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from kitchen.adapters.blobs import LocalBlobStore

    root, started = Path(sys.argv[1]), Path(sys.argv[2])

    def fill(folder):
        with open(folder / "weights.bin", "wb") as f:
            for i in range(10_000):
                f.write(b"\\x07" * 4096)
                if i == 20:
                    f.flush()
                    started.write_text(str(folder))
                time.sleep(0.005)

    LocalBlobStore(root).write_dir(sys.argv[3], fill)
    print("finished")
    """
)


def kill_writer_mid_fill(root: Path, tmp_path: Path) -> Path:
    """Run a writer in a child process, SIGKILL it inside fill, return its temp folder."""
    started = tmp_path / "started"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    child = subprocess.Popen([sys.executable, str(script), str(root), str(started), KEY])
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert child.poll() is None, "the writer ended before it started writing"
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    return Path(started.read_text())


def test_killed_writer_leaves_the_old_blob_intact(tmp_path: Path) -> None:
    root = tmp_path / "home"
    store = LocalBlobStore(root)
    old = store.write_dir(KEY, fill_two_files)
    temp = kill_writer_mid_fill(root, tmp_path)
    assert temp.parent == (root / KEY).parent and temp.name.startswith(".")
    assert (temp / "weights.bin").stat().st_size > 0
    assert store.verify(old)
    assert (store.local_path(old.uri) / "a.txt").read_bytes() == b"hello\n"
    assert not (store.local_path(old.uri) / "weights.bin").exists()
    assert list(store.list()) == [KEY]
    assert store.sweep_temp() == [temp.relative_to(root).as_posix()]
    assert not temp.exists() and store.verify(old)


def test_killed_first_writer_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "home"
    store = LocalBlobStore(root)
    temp = kill_writer_mid_fill(root, tmp_path)
    assert not store.exists(KEY)
    assert list(store.list()) == []
    store.sweep_temp()
    assert not temp.exists()
    assert sorted(p.name for p in (root / KEY).parent.iterdir()) == []


def test_sweep_puts_back_a_blob_left_aside_between_the_renames(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    old = store.write_dir(KEY, fill_two_files)
    aside = (tmp_path / KEY).parent / f".step-000010.kitchen-old-{'0' * 32}"
    os.rename(tmp_path / KEY, aside)
    assert not store.exists(KEY) and list(store.list()) == []
    assert store.sweep_temp("run-1/") == [f"run-1/checkpoints/{aside.name}"]
    assert store.verify(old)


def test_sweep_spares_entries_younger_than_the_cutoff(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    young = tmp_path / f".x.kitchen-tmp-{'a' * 32}"
    young.mkdir()
    assert store.sweep_temp(older_than_s=3600) == []
    assert young.exists()


def test_uris_are_relative_so_the_home_folder_can_move(tmp_path: Path) -> None:
    ref = LocalBlobStore(tmp_path / "a").write_dir(KEY, fill_two_files)
    assert ref.uri == KEY
    shutil.move(tmp_path / "a", tmp_path / "b")
    assert LocalBlobStore(tmp_path / "b").verify(ref)


def test_hash_path_matches_sha256sum_from_the_shell(tmp_path: Path) -> None:
    ref = LocalBlobStore(tmp_path).write_dir(KEY, fill_two_files)
    folder = tmp_path / KEY
    assert LocalBlobStore.hash_path(folder) == (ref.sha256, ref.bytes)
    pipeline = (
        "find . -type f ! -path ./.kitchen-blob -printf '%P\\0' | LC_ALL=C sort -z"
        " | xargs -0 sha256sum | sha256sum"
    )
    out = subprocess.run(pipeline, shell=True, cwd=folder, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == ref.sha256


def test_a_tampered_file_fails_verification(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    ref = store.write_dir(KEY, fill_two_files)
    (tmp_path / KEY / "a.txt").write_bytes(b"hellO\n")
    assert not store.verify(ref)


def test_a_full_disk_is_an_infrastructure_error_and_leaves_no_blob(tmp_path: Path) -> None:
    import errno

    from kitchen.errors import InfrastructureError

    store = LocalBlobStore(tmp_path)

    def fill(folder: Path) -> None:
        (folder / "part").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(InfrastructureError, match="No space left on device; free space"):
        store.write_dir(KEY, fill)
    assert not store.exists(KEY)
    assert list(store.list()) == []
