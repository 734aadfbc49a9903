"""The blob store for checkpoints, weights and artifacts: a folder, normally KITCHEN_HOME.

A checkpoint is recorded by ``CheckpointSaved`` only after its blob is whole, so the
store's one job is that a blob is either entirely there or not there at all. Locally that
is temp folder + fsync + rename; a folder blob also carries a ``.kitchen-blob`` marker
(written last) so that stores without an atomic rename can tell a whole blob from a torn
one the same way.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kitchen.adapters import _localfs as lfs
from kitchen.adapters._blob_common import (
    MARKER,
    check_filled,
    check_key,
    is_reserved,
    marker_bytes,
    nested_error,
    parse_temp_name,
    sha256_chunks,
    split_prefix,
    temp_name,
)
from kitchen.engine.io_faults import storage_fault
from kitchen.errors import (
    BlobStoreUnavailable,
    ConfigError,
    KitchenError,
    NotFound,
)
from kitchen.ports import BlobRef


class LocalBlobStore:
    """Blobs under one local folder (KITCHEN_HOME); a blob's URI is its key.

    URIs are relative to the root so that the whole home folder can be moved or copied to
    another machine and the URIs in the event log still resolve.
    """

    def __init__(self, root: Path | str, *, recorded: bool = False) -> None:
        """``recorded``: the folder is not KITCHEN_HOME but one KITCHEN_BLOBS_URL named, which
        the run records (``location``) so that a resume and every reader find it."""
        self.root = Path(root).expanduser().absolute()
        self.recorded = recorded

    @staticmethod
    def hash_path(path: Path | str) -> tuple[str, int]:
        """``(sha256 hex, bytes)`` of a blob on disk, as recorded in its BlobRef.

        A file: the sha256 of its bytes, and its size. A folder: every regular file below
        it except the top-level ``.kitchen-blob`` marker gives the line
        ``"<sha256 of the file>  <path relative to the folder, with />\\n"`` (``sha256sum``'s
        format); the lines, ordered by path (code point order, which is UTF-8 byte order),
        are concatenated and hashed; bytes is the sum of the files' sizes. Empty folders
        add nothing. For a folder without symlinks the same hex comes from
        ``find . -type f ! -path ./.kitchen-blob -printf '%P\\0' | LC_ALL=C sort -z |
        xargs -0 sha256sum | sha256sum``.
        """
        target = Path(path)
        if not target.exists():
            raise NotFound(f"no blob at {target}; check the path or KITCHEN_HOME")
        return lfs.digest(target)

    # ------------------------------------------------------------------ writes

    def write_dir(self, key: str, fill: Callable[[Path], None]) -> BlobRef:
        with _infrastructure(self.root / key):
            return self._write_dir(key, fill)

    def _write_dir(self, key: str, fill: Callable[[Path], None]) -> BlobRef:
        dest = self._dest(key)
        tmp = dest.parent / temp_name(dest.name, "tmp")
        tmp.mkdir()
        try:
            with _infrastructure(dest, probe=tmp):  # asked before the temp folder goes
                fill(tmp)
                check_filled(tmp)
                sha, size = lfs.digest(tmp, sync=True)
                lfs.write_synced(tmp / MARKER, marker_bytes(sha, size))
                lfs.fsync_dir(tmp)
                self._swap_in(tmp, dest)
        finally:
            lfs.remove(tmp)
        return BlobRef(key, sha, size)

    def write_bytes(self, key: str, data: bytes) -> BlobRef:
        with _infrastructure(self.root / key):
            return self._write_bytes(key, data)

    def _write_bytes(self, key: str, data: bytes) -> BlobRef:
        dest = self._dest(key)
        tmp = dest.parent / temp_name(dest.name, "tmp")
        try:
            lfs.write_synced(tmp, data)
            sha, size = sha256_chunks([data])
            self._swap_in(tmp, dest)
        finally:
            lfs.remove(tmp)
        return BlobRef(key, sha, size)

    def _dest(self, key: str) -> Path:
        """Check the key, refuse nesting inside another blob, and create the parent folders."""
        check_key(key)
        current = self.root
        for part in key.split("/")[:-1]:
            current = current / part
            if current.is_file() or (current / MARKER).is_file():
                raise nested_error(key, current.relative_to(self.root).as_posix())
        dest = self.root / key
        lfs.make_parents(dest.parent, self.root)
        return dest

    @staticmethod
    def _swap_in(tmp: Path, dest: Path) -> None:
        """Rename ``tmp`` to ``dest``; an existing blob is renamed aside first, then removed.

        A reader sees the old blob, then briefly nothing, then the new one, never a mix. A
        writer killed between the renames leaves the old blob under a hidden name, which
        ``sweep_temp`` puts back.
        """
        aside: Path | None = None
        if dest.is_dir() and not dest.is_symlink():
            aside = dest.parent / temp_name(dest.name, "old")
            os.rename(dest, aside)
        os.replace(tmp, dest)
        lfs.fsync_dir(dest.parent)
        if aside is not None:
            lfs.remove(aside)

    # ------------------------------------------------------------------ where, and reachable

    def location(self) -> dict[str, str]:
        """Where blobs live, as RunCreated records it: nothing beyond the adapter's name for
        KITCHEN_HOME, since local URIs are relative to it and it may move from machine to
        machine; the folder (``root``) when KITCHEN_BLOBS_URL named another."""
        return {"root": str(self.root)} if self.recorded else {}

    def check_usable(self) -> None:
        """Before a new run writes anything: the folder can be made and written to."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / temp_name("write-test", "tmp")
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            fault = storage_fault(exc, f"to blob folder {self.root}", then="try again")
            if fault is not None:
                raise fault from None
            raise ConfigError(
                f"blob folder {str(self.root)!r} is not writable ({exc.strerror or exc}); set "
                "KITCHEN_BLOBS_URL to a folder you can write"
            ) from None

    def check_reachable(self, prefix: str) -> None:
        """Raise ``BlobStoreUnavailable`` when the folder holding ``prefix``'s blobs is not
        there at all (a network filesystem not mounted, KITCHEN_HOME pointing elsewhere):
        blobs that cannot be reached are not blobs that are damaged."""
        folder = self.root / split_prefix(prefix) if prefix else self.root
        if not folder.is_dir():
            raise BlobStoreUnavailable(
                f"blob folder {folder} is not there: if its filesystem is not mounted, mount "
                "it; if KITCHEN_HOME should name another folder, set it; then resume"
            )

    # ------------------------------------------------------------------ reads

    def _path(self, uri: str) -> Path:
        return self.root / check_key(uri)

    def exists(self, uri: str) -> bool:
        path = self._path(uri)
        return path.is_file() or (path / MARKER).is_file()

    def local_path(self, uri: str) -> Path:
        if not self.exists(uri):
            raise NotFound(f"no blob {uri!r} under {self.root}; check the URI or KITCHEN_HOME")
        return self._path(uri)

    def read_bytes(self, uri: str) -> bytes:
        path = self.local_path(uri)
        if path.is_dir():
            raise ConfigError(f"blob {uri!r} is a folder; open it with local_path(uri)")
        return path.read_bytes()

    def verify(self, ref: BlobRef) -> bool:
        try:
            if not self.exists(ref.uri):
                return False
        except ConfigError:
            return False
        return lfs.digest(self._path(ref.uri)) == (ref.sha256, ref.bytes)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys of whole blobs starting with ``prefix``, sorted; temp entries are skipped."""
        base = split_prefix(prefix)
        start = self.root / base if base else self.root
        if not start.is_dir():
            return iter(())
        return iter(sorted(k for k in self._walk(start, base) if k.startswith(prefix)))

    def _walk(self, folder: Path, key: str) -> Iterator[str]:
        for entry in os.scandir(folder):
            if is_reserved(entry.name):
                continue
            child = f"{key}/{entry.name}" if key else entry.name
            if entry.is_dir(follow_symlinks=False):
                if Path(entry.path, MARKER).is_file():
                    yield child
                else:
                    yield from self._walk(Path(entry.path), child)
            elif entry.is_file(follow_symlinks=False):
                yield child

    # ------------------------------------------------------------------ removal

    def delete(self, uri: str) -> None:
        """Remove a blob; a missing one is fine, so that a retried clean-up cannot fail.

        A folder is renamed to a hidden name first, so no reader sees it half-deleted.
        """
        path = self._path(uri)
        if path.is_dir() and not path.is_symlink():
            aside = path.parent / temp_name(path.name, "old")
            os.rename(path, aside)
            lfs.fsync_dir(path.parent)
            lfs.remove(aside)
        elif path.exists() or path.is_symlink():
            path.unlink()
            lfs.fsync_dir(path.parent)

    def sweep_temp(self, prefix: str = "", *, older_than_s: float = 0.0) -> builtins.list[str]:
        """Clean what killed writers left, and return the keys of the entries handled.

        A temp folder is removed. A blob renamed aside is put back if nothing took its
        place, else removed. Only entries untouched for ``older_than_s`` are handled, so
        that a sweep does not pull a file from under a writer still at work.
        """
        base = split_prefix(prefix)
        start = self.root / base if base else self.root
        if not start.is_dir():
            return []
        cutoff = time.time() - older_than_s
        return sorted(self._sweep(start, base, prefix, cutoff))

    def _sweep(self, folder: Path, key: str, prefix: str, cutoff: float) -> Iterator[str]:
        for entry in os.scandir(folder):
            child = f"{key}/{entry.name}" if key else entry.name
            parsed = parse_temp_name(entry.name)
            path = Path(entry.path)
            if parsed is not None:
                name, kind = parsed
                target = f"{key}/{name}" if key else name
                age_ok = entry.stat(follow_symlinks=False).st_mtime <= cutoff
                if target.startswith(prefix) and age_ok:
                    _settle(path, folder / name, kind)
                    yield child
            elif entry.is_dir(follow_symlinks=False) and not (path / MARKER).is_file():
                yield from self._sweep(path, child, prefix, cutoff)


def _settle(path: Path, original: Path, kind: str) -> None:
    if kind == "old" and not original.exists() and not original.is_symlink():
        os.rename(path, original)
        lfs.fsync_dir(original.parent)
    else:
        lfs.remove(path)


__all__ = ["LocalBlobStore", "create_store"]


@contextlib.contextmanager
def _infrastructure(dest: Path, probe: Path | None = None) -> Iterator[None]:
    """A full, read-only or failing disk is the machine's fault, not the run's: say so with
    its own type, naming the blob's path. What the writing library raised is read first
    (``kitchen.engine.io_faults``); when it does not say why (``torch.save`` does not), the
    filesystem at ``probe`` is asked, while the half-written temp folder still fills it."""
    try:
        yield
    except KitchenError:
        raise
    except Exception as exc:
        fault = storage_fault(exc, f"blob {dest}", path=probe)
        if fault is None:
            raise
        raise fault from exc


def create_store(config: Any, home: Path, location: dict[str, Any] | None = None) -> LocalBlobStore:
    """The manifest's factory: blobs live under KITCHEN_HOME, or in the folder the run recorded
    (``location``), or, for a new run, in the folder KITCHEN_BLOBS_URL names."""
    from kitchen import settings

    if location is not None:
        root = location.get("root")
        return LocalBlobStore(root, recorded=True) if root else LocalBlobStore(home)
    folder = settings.current().blobs_url
    if folder and "://" not in folder:
        return LocalBlobStore(folder, recorded=True)
    return LocalBlobStore(home)
