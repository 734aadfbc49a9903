"""Durable local file operations the local blob store is built from.

A rename is only durable once the folder that holds it is fsynced, and a file's bytes
only once the file is; these helpers make each step say which it needs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from kitchen.adapters._blob_common import MARKER, manifest_digest, read_chunks, sha256_chunks


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_file(path: Path, *, sync: bool = False) -> tuple[str, int]:
    with open(path, "rb") as f:
        result = sha256_chunks(read_chunks(f))
        if sync:
            os.fsync(f.fileno())
    return result


def digest(path: Path, *, sync: bool = False) -> tuple[str, int]:
    """sha256 and bytes of a file or a folder (see ``LocalBlobStore.hash_path``).

    With ``sync`` every file and folder is fsynced on the way, so the writer reads each
    file once for both.
    """
    if not path.is_dir():
        return hash_file(path, sync=sync)
    entries: list[tuple[str, str, int]] = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in filenames:
            file = Path(dirpath, name)
            rel = file.relative_to(path).as_posix()
            if rel != MARKER and file.is_file():
                entries.append((rel, *hash_file(file, sync=sync)))
        if sync:
            fsync_dir(dirpath)
    return manifest_digest(entries)


def write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def make_parents(folder: Path, root: Path) -> None:
    """Create ``folder`` and its missing ancestors below ``root``, fsyncing each new entry."""
    missing: list[Path] = []
    current = folder
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        if path != root:
            fsync_dir(path.parent)


def remove(path: Path) -> None:
    """Remove a file or a folder; a missing one is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
