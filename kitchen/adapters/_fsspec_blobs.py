"""A blob store on any fsspec filesystem (``memory://``, ``s3://``, ``gs://``, ``file://`` …).

Object stores have no atomic folder rename, so a folder blob counts as written only once
its ``.kitchen-blob`` marker exists: the files are uploaded under a hidden temp prefix,
moved into place, and the marker is written last. Replacing a blob removes the old marker
first. A reader therefore sees the old blob, nothing, or the new one, never a mix.
"""

from __future__ import annotations

import builtins
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kitchen.adapters import _localfs as lfs
from kitchen.adapters._blob_common import (
    MARKER,
    check_filled,
    check_key,
    manifest_digest,
    marker_bytes,
    nested_error,
    parse_temp_name,
    read_chunks,
    sha256_chunks,
    split_prefix,
    temp_name,
)
from kitchen.errors import ConfigError, NotFound
from kitchen.ports import BlobRef


class FsspecBlobStore:
    """Blobs under ``base_url``; a blob's URI is ``base_url/key``.

    ``local_path`` of a remote blob downloads a copy into ``cache_dir`` (a temp folder by
    default): writing to that copy does not change the blob.
    """

    def __init__(self, base_url: str, *, cache_dir: Path | None = None) -> None:
        from fsspec.core import url_to_fs

        try:
            fs, root = url_to_fs(base_url)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"cannot open blob store {base_url!r}: {exc}") from None
        self.base_url = base_url.rstrip("/")
        self._fs: Any = fs
        self._root = str(root).rstrip("/")
        self._cache = cache_dir or Path(tempfile.gettempdir()) / "kitchen-blob-cache"

    def _key(self, uri: str) -> str:
        head = self.base_url + "/"
        return check_key(uri[len(head) :] if uri.startswith(head) else uri)

    def _rpath(self, key: str) -> str:
        return f"{self._root}/{key}"

    # ------------------------------------------------------------------ writes

    def write_dir(self, key: str, fill: Callable[[Path], None]) -> BlobRef:
        dest = self._writable(key)
        with tempfile.TemporaryDirectory(prefix="kitchen-blob-") as local:
            folder = Path(local)
            fill(folder)
            check_filled(folder)
            sha, size = lfs.digest(folder)
            tmp = self._upload(folder, dest)
            self._remove(dest)
            if tmp is not None:
                self._fs.mv(tmp, dest, recursive=True)
            self._fs.makedirs(dest, exist_ok=True)
            self._fs.pipe_file(f"{dest}/{MARKER}", marker_bytes(sha, size))
        return BlobRef(f"{self.base_url}/{key}", sha, size)

    def write_bytes(self, key: str, data: bytes) -> BlobRef:
        dest = self._writable(key)
        parent, _, name = dest.rpartition("/")
        tmp = f"{parent}/{temp_name(name, 'tmp')}"
        self._fs.makedirs(parent, exist_ok=True)
        self._fs.pipe_file(tmp, data)
        if self._fs.isdir(dest):
            self._remove(dest)
        self._fs.mv(tmp, dest)
        return BlobRef(f"{self.base_url}/{key}", hashlib.sha256(data).hexdigest(), len(data))

    def _writable(self, key: str) -> str:
        check_key(key)
        parts = key.split("/")
        for i in range(1, len(parts)):
            outer = "/".join(parts[:i])
            if self.exists(outer):
                raise nested_error(key, outer)
        return self._rpath(key)

    def _upload(self, folder: Path, dest: str) -> str | None:
        """Copy the folder's files under a hidden sibling of ``dest``; None if it has none."""
        parent, _, name = dest.rpartition("/")
        tmp = f"{parent}/{temp_name(name, 'tmp')}"
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        for path in files:
            target = f"{tmp}/{path.relative_to(folder).as_posix()}"
            self._fs.makedirs(target.rpartition("/")[0], exist_ok=True)
            self._fs.put_file(str(path), target)
        return tmp if files else None

    # ------------------------------------------------------------------ reads

    def exists(self, uri: str) -> bool:
        path = self._rpath(self._key(uri))
        return bool(self._fs.isfile(path) or self._fs.isfile(f"{path}/{MARKER}"))

    def read_bytes(self, uri: str) -> bytes:
        path = self._rpath(self._key(uri))
        if not self.exists(uri):
            raise NotFound(f"no blob {uri!r} under {self.base_url}; check the URI")
        if not self._fs.isfile(path):
            raise ConfigError(f"blob {uri!r} is a folder; open it with local_path(uri)")
        return bytes(self._fs.cat_file(path))

    def local_path(self, uri: str) -> Path:
        key = self._key(uri)
        if not self.exists(uri):
            raise NotFound(f"no blob {uri!r} under {self.base_url}; check the URI")
        if "file" in _protocols(self._fs):
            return Path(self._rpath(key))
        return self._download(key)

    def _download(self, key: str) -> Path:
        slot = self._cache / hashlib.sha256(f"{self.base_url}/{key}".encode()).hexdigest()[:16]
        name = key.rpartition("/")[2]
        slot.mkdir(parents=True, exist_ok=True)
        tmp = slot / temp_name(name, "tmp")
        source = self._rpath(key)
        if self._fs.isfile(source):
            self._fs.get_file(source, str(tmp))
        else:
            tmp.mkdir()
            for path in sorted(self._fs.find(source)):
                target = tmp / path[len(source) + 1 :]
                target.parent.mkdir(parents=True, exist_ok=True)
                self._fs.get_file(path, str(target))
        lfs.remove(slot / name)
        tmp.rename(slot / name)
        return slot / name

    def verify(self, ref: BlobRef) -> bool:
        try:
            if not self.exists(ref.uri):
                return False
        except ConfigError:
            return False
        return self._digest(self._rpath(self._key(ref.uri))) == (ref.sha256, ref.bytes)

    def _digest(self, path: str) -> tuple[str, int]:
        if self._fs.isfile(path):
            return self._hash(path)
        entries = [
            (p[len(path) + 1 :], *self._hash(p))
            for p in self._fs.find(path)
            if p[len(path) + 1 :] != MARKER
        ]
        return manifest_digest(entries)

    def _hash(self, path: str) -> tuple[str, int]:
        with self._fs.open(path, "rb") as f:
            return sha256_chunks(read_chunks(f))

    def list(self, prefix: str = "") -> Iterator[str]:
        """URIs of whole blobs whose key starts with ``prefix``, sorted."""
        base = split_prefix(prefix)
        start = self._rpath(base) if base else self._root
        if not self._fs.isdir(start):
            return iter(())
        files = [p[len(self._root) + 1 :] for p in self._fs.find(start)]
        files = [f for f in files if not any(parse_temp_name(part) for part in f.split("/"))]
        folders = {f.rpartition("/")[0] for f in files if f.rpartition("/")[2] == MARKER}
        keys = set(folders)
        for f in files:
            parts = f.split("/")
            if not any("/".join(parts[:i]) in folders for i in range(1, len(parts))):
                keys.add(f)
        return iter(f"{self.base_url}/{k}" for k in sorted(keys) if k.startswith(prefix))

    # ------------------------------------------------------------------ removal

    def delete(self, uri: str) -> None:
        """Remove a blob (marker first, so it stops counting at once); a missing one is fine."""
        self._remove(self._rpath(self._key(uri)))

    def _remove(self, path: str) -> None:
        if self._fs.isfile(path):
            self._fs.rm_file(path)
            return
        if self._fs.isfile(f"{path}/{MARKER}"):
            self._fs.rm_file(f"{path}/{MARKER}")
        if self._fs.isdir(path):
            self._fs.rm(path, recursive=True)

    def sweep_temp(self, prefix: str = "") -> builtins.list[str]:
        """Remove what killed writers left under hidden temp names; return their keys."""
        base = split_prefix(prefix)
        start = self._rpath(base) if base else self._root
        if not self._fs.isdir(start):
            return []
        found: set[str] = set()
        for path in self._fs.find(start, withdirs=True):
            parts = path[len(self._root) + 1 :].split("/")
            for i, part in enumerate(parts):
                parsed = parse_temp_name(part)
                if parsed:
                    if "/".join([*parts[:i], parsed[0]]).startswith(prefix):
                        found.add("/".join(parts[: i + 1]))
                    break
        for key in found:
            self._fs.rm(self._rpath(key), recursive=True)
        return sorted(found)


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)
