"""What a full, read-only or failing disk looks like when it reaches kitchen, library by
library, and that ``kitchen.engine.io_faults`` reads each of them as the storage's fault.

Every fault here is real: a tmpfs filled to its last page (ENOSPC) or remounted read-only
(EROFS), written through the library itself (safetensors, ``torch.save``, pyarrow, SQLite,
the event store, the blob store). Postgres' disk-full is the one exception: a server's full
disk cannot be made here, so its driver's error class (which carries the SQLSTATE the server
sends) is built directly. Errors of the run itself — a corrupt file, a bug — stay errors.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from kitchen.engine.io_faults import fault_errno, probe, storage_fault
from kitchen.errors import (
    CheckpointCorrupt,
    DiskFull,
    ReadOnlyStorage,
    StorageIOError,
)
from tests.disk.realfs import Tmpfs

MakeFs = Callable[..., Tmpfs]


def _raised(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError("no error")


def test_safetensors_on_a_full_disk(tmpfs: MakeFs) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    fs = tmpfs(size="1m")
    fs.fill()
    exc = _raised(lambda: save_file({"w": torch.zeros(4096)}, str(fs.path / "w.safetensors")))
    assert type(exc).__name__ == "SafetensorError"
    assert "(os error 28)" in str(exc)
    fault = storage_fault(exc, str(fs.path / "w.safetensors"))
    assert isinstance(fault, DiskFull) and fault.fault == "disk_full" and fault.exit_code == 75
    assert str(fault) == (
        f"cannot write {fs.path / 'w.safetensors'}: No space left on device; free space and resume"
    )
    assert fault.__cause__ is exc


def test_torch_save_says_no_errno_so_the_filesystem_is_asked(tmpfs: MakeFs) -> None:
    torch = pytest.importorskip("torch")
    fs = tmpfs(size="1m")
    fs.fill(leave=4096)
    exc = _raised(lambda: torch.save({"t": torch.zeros(100_000)}, str(fs.path / "o.pt")))
    assert isinstance(exc, RuntimeError)  # "… unexpected pos N vs M": nothing says why
    assert fault_errno(exc) is None
    assert storage_fault(exc) is None
    assert probe(fs.path / "o.pt") == errno.ENOSPC
    assert isinstance(storage_fault(exc, "o.pt", path=fs.path), DiskFull)


def test_pyarrow_on_a_full_disk(tmpfs: MakeFs) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    fs = tmpfs(size="1m")
    fs.fill()
    table = pa.table({"x": list(range(200_000))})
    exc = _raised(lambda: pq.write_table(table, str(fs.path / "x.parquet")))
    assert isinstance(storage_fault(exc), DiskFull)


def test_sqlite_database_or_disk_is_full(tmpfs: MakeFs) -> None:
    fs = tmpfs(size="1m")
    db = sqlite3.connect(fs.path / "x.db", isolation_level=None)
    db.execute("CREATE TABLE t (b BLOB)")
    fs.fill()
    exc = _raised(lambda: db.execute("INSERT INTO t VALUES (?)", (b"\1" * 200_000,)))
    db.close()
    assert "database or disk is full" in str(exc)
    assert isinstance(storage_fault(exc), DiskFull)


def test_the_event_store_on_a_full_disk_names_the_database(tmpfs: MakeFs) -> None:
    from kitchen.store import NewEvent, open_store

    fs = tmpfs(size="2m")
    url = f"sqlite:///{fs.path / 'kitchen.db'}"
    store = open_store(url)
    try:
        store.append("r", [NewEvent("Note", {"n": 0})], expected_seq=0)
        fs.fill()
        with pytest.raises(DiskFull) as caught:
            big = [NewEvent("Note", {"n": i, "pad": "x" * 4000}) for i in range(64)]
            store.append("r", big, expected_seq=1)
    finally:
        store.close()
    assert str(caught.value) == (
        f"cannot write to database {url} (append to run r): No space left on device; "
        "free space and try again"
    )


def test_a_read_only_filesystem(tmpfs: MakeFs) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    fs = tmpfs(size="1m")
    fs.read_only()
    exc = _raised(lambda: (fs.path / "f").write_text("x"))
    fault = storage_fault(exc)
    assert isinstance(fault, ReadOnlyStorage) and fault.fault == "read_only"
    assert str(fault) == (
        f"cannot write {fs.path / 'f'}: Read-only file system; make it writable again and resume"
    )
    exc = _raised(lambda: save_file({"w": torch.zeros(4)}, str(fs.path / "w.safetensors")))
    assert "(os error 30)" in str(exc)
    assert isinstance(storage_fault(exc), ReadOnlyStorage)
    assert probe(fs.path) == errno.EROFS


def test_a_readonly_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    sqlite3.connect(path).execute("CREATE TABLE t (a)").connection.close()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    exc = _raised(lambda: db.execute("INSERT INTO t VALUES (1)"))
    db.close()
    assert "attempt to write a readonly database" in str(exc)
    assert isinstance(storage_fault(exc), ReadOnlyStorage)


def test_postgres_sqlstates_through_sqlalchemy() -> None:
    """A Postgres server's own disk: SQLSTATE 53100 (disk_full), 58030 (io_error), 25006 (a
    server that only takes reads), as psycopg raises them and SQLAlchemy wraps them. The
    wrapper's message (which holds the statement's parameters) is never read."""
    errors = pytest.importorskip("psycopg.errors")
    from sqlalchemy import exc as sa_exc

    for orig, kind in (
        (errors.DiskFull('could not extend file "base/1/2": No space left on device'), DiskFull),
        (errors.IoError("could not read block 0"), StorageIOError),
        (errors.ReadOnlySqlTransaction("cannot execute INSERT"), ReadOnlyStorage),
    ):
        wrapped = sa_exc.OperationalError("INSERT …", {"p": "x"}, orig)
        assert isinstance(storage_fault(wrapped), kind)
    other = sa_exc.IntegrityError("INSERT …", {"reason": "No space left on device"}, ValueError())
    assert storage_fault(other) is None


def test_errors_of_the_run_stay_errors(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from safetensors.torch import load_file

    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(b"\xff" * 64)
    exc = _raised(lambda: load_file(str(corrupt)))
    assert type(exc).__name__ == "SafetensorError"
    assert storage_fault(exc) is None
    assert storage_fault(exc, path=tmp_path) is None  # room to spare: not the disk's doing
    assert storage_fault(CheckpointCorrupt("fails its sha256")) is None
    assert storage_fault(ValueError("bad value")) is None
    assert storage_fault(OSError(errno.ENOENT, "No such file or directory", "x")) is None


def test_a_fault_found_behind_another_error() -> None:
    try:
        try:
            raise OSError(errno.EIO, "Input/output error", "/data/w.bin")
        except OSError as inner:
            raise RuntimeError("save failed") from inner
    except RuntimeError as outer:
        fault = storage_fault(outer)
    assert isinstance(fault, StorageIOError) and fault.fault == "io_error"
    assert str(fault) == ("cannot write /data/w.bin: Input/output error; check the disk and resume")


def test_the_blob_store_asks_the_filesystem_while_the_temp_folder_fills_it(
    tmpfs: MakeFs,
) -> None:
    """``torch.save`` into a blob on a full disk: nothing in its error says why, so the blob
    store asks the filesystem before it removes the half-written temp folder."""
    torch = pytest.importorskip("torch")
    from kitchen.adapters.blobs import LocalBlobStore

    fs = tmpfs(size="2m")
    blobs = LocalBlobStore(fs.path)
    blobs.write_bytes("r/meta.txt", b"kept\n")
    fs.fill(leave=64 * 4096)

    def fill(folder: Path) -> None:
        torch.save({"t": torch.zeros(200_000)}, str(folder / "optimizer.pt"))

    with pytest.raises(DiskFull) as caught:
        blobs.write_dir("r/checkpoints/step-000002", fill)
    assert str(caught.value) == (
        f"cannot write blob {fs.path / 'r/checkpoints/step-000002'}: No space left on device; "
        "free space and resume"
    )
    assert sorted(p.name for p in (fs.path / "r" / "checkpoints").iterdir()) == []
    assert list(blobs.list("r/")) == ["r/meta.txt"]
