"""The blob store on object storage: any fsspec URL (``s3://BUCKET/PREFIX``, ``gs://…``,
``memory://…``, ``file://…``), chosen with ``KITCHEN_BLOBS_URL``.

Object stores have no rename, so a folder blob is published the way the marker was designed
for: its files go under a fresh hidden generation inside the key
(``KEY/.data.kitchen-gen-<hex>/…``, a name every store reserves), then the ``.kitchen-blob``
marker is PUT last, naming that generation with the folder's sha256 and size. A reader reads
the marker first and the generation it names, so it sees the old folder or the new one, never
a mix; the old generation is deleted only once the new marker is in place. A fill runs in a
local folder, so a failed fill never touches the remote. A file blob is one object (a PUT is
atomic).

Reads go through a cache under ``KITCHEN_HOME/.blob-cache``: ``local_path`` downloads a
folder's generation there, recomputes its digest with the scheme every store shares
(``kitchen.adapters._blob_common``) and compares it with the marker before handing the folder
out; a cached generation whose digest still matches is reused.

Every storage error (endpoint down, credentials refused, bucket gone) is
``BlobStoreUnavailable``, an infrastructure fault, never a missing or damaged blob: ``verify``
answers False only for a blob that a reachable store does not hold or whose digest differs.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from kitchen.adapters import _localfs as lfs
from kitchen.adapters._blob_common import (
    MARKER,
    check_filled,
    check_key,
    is_reserved,
    nested_error,
    parse_temp_name,
    sha256_chunks,
    split_prefix,
    temp_name,
)
from kitchen.engine.io_faults import storage_fault
from kitchen.errors import BlobStoreUnavailable, ConfigError, KitchenError, NotFound
from kitchen.ports import BlobRef

CACHE = ".blob-cache"
"""The folder under KITCHEN_HOME where remote blobs are downloaded (and fills are staged)."""

BUCKET_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss", "r2"})
"""Protocols whose first path part is a bucket (or container) that must exist already."""

S3_CONFIG = {
    "connect_timeout": 5,
    "read_timeout": 60,
    "retries": {"max_attempts": 3, "mode": "standard"},
}
"""botocore's settings for s3: an endpoint that does not answer fails within seconds, not
after botocore's default minutes of retries. ``AWS_MAX_ATTEMPTS`` / ``AWS_RETRY_MODE``, where
set, replace the retries."""

_FIX = "check the URL, the endpoint (e.g. AWS_ENDPOINT_URL) and the credentials"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class FsspecBlobStore:
    """Blobs under one fsspec URL; a blob's URI is its key, as in the local store."""

    def __init__(self, url: str, cache: Path | str) -> None:
        self.url = url.rstrip("/")
        self.fs, root = _open(self.url)
        self.root = root.rstrip("/")
        self.protocol = _protocol(self.fs)
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.cache = Path(cache).expanduser().absolute() / digest

    # ------------------------------------------------------------------ paths and errors

    def _remote(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    @contextlib.contextmanager
    def _storage(self, what: str, *, writing: bool = False) -> Iterator[None]:
        """Any failure of the storage itself becomes ``BlobStoreUnavailable``, naming the URL.
        A missing object stays ``FileNotFoundError`` for a reader to judge; to a writer, which
        looked up what it needed first, it means the bucket went away under it."""
        try:
            yield
        except KitchenError:
            raise
        except FileNotFoundError as exc:
            if not writing:
                raise
            raise BlobStoreUnavailable(
                f"blob store {self.url}: {what} failed ({_one_line(exc)}: the bucket or folder "
                f"is gone?); {_FIX}, then resume"
            ) from exc
        except Exception as exc:
            raise BlobStoreUnavailable(
                f"blob store {self.url}: {what} failed ({_one_line(exc)}); {_FIX}, then resume"
            ) from exc

    def _info(self, path: str) -> dict[str, Any] | None:
        try:
            return dict(self.fs.info(path))
        except FileNotFoundError:
            return None

    def _is_file(self, path: str) -> bool:
        info = self._info(path)
        return info is not None and info.get("type") == "file"

    def _marker(self, key: str) -> dict[str, Any] | None:
        """The marker of the folder blob at ``key``, or None when there is none."""
        try:
            data = self.fs.cat_file(f"{self._remote(key)}/{MARKER}")
        except FileNotFoundError:
            return None
        try:
            marker = json.loads(data)
            str(marker["generation"]), str(marker["sha256"]), int(marker["bytes"])
        except (ValueError, KeyError, TypeError):
            return {"generation": "", "sha256": "", "bytes": -1}  # torn or foreign: no match
        return dict(marker)

    # ------------------------------------------------------------------ where, and reachable

    def location(self) -> dict[str, str]:
        """Where blobs live, as RunCreated records it: the URL, so that a resume on another
        machine, and every reader of the run, opens the same bucket and prefix."""
        return {"url": self.url}

    def _anchor(self) -> str:
        """What must exist before anything is written: the bucket, or the root folder."""
        if self.protocol in BUCKET_PROTOCOLS:
            return self.root.split("/")[0]
        return self.root

    def check_reachable(self, prefix: str = "") -> None:
        """Raise ``BlobStoreUnavailable`` when the bucket (or root folder) cannot be listed:
        an endpoint down, credentials refused, a bucket gone. Blobs that cannot be reached
        are not blobs that are damaged."""
        if prefix:
            split_prefix(prefix)
        anchor = self._anchor()
        try:
            self.fs.ls(anchor, detail=False)
        except FileNotFoundError as exc:
            raise BlobStoreUnavailable(
                f"blob store {self.url}: {anchor!r} is not there ({_one_line(exc)}); {_FIX}, "
                "then resume"
            ) from exc
        except Exception as exc:
            raise BlobStoreUnavailable(
                f"blob store {self.url} cannot be reached ({_one_line(exc)}); {_FIX}, then resume"
            ) from exc

    def check_usable(self) -> None:
        """Before a new run writes anything: the bucket must exist and take these credentials.
        A missing bucket or refused credentials are a mistake to fix (ConfigError); an
        endpoint that does not answer is ``BlobStoreUnavailable``."""
        if self.protocol not in BUCKET_PROTOCOLS:
            with self._storage(f"creating {self.root!r}"):
                self.fs.makedirs(self.root, exist_ok=True)
        anchor = self._anchor()
        try:
            self.fs.ls(anchor, detail=False)
        except FileNotFoundError:
            raise ConfigError(
                f"KITCHEN_BLOBS_URL={self.url}: bucket {anchor!r} does not exist; create it, "
                "or set KITCHEN_BLOBS_URL to a bucket that exists"
            ) from None
        except Exception as exc:
            if not isinstance(exc, PermissionError) and not _no_credentials(exc):
                raise BlobStoreUnavailable(
                    f"KITCHEN_BLOBS_URL={self.url} cannot be reached ({_one_line(exc)}); "
                    f"{_FIX}, or try again once it answers"
                ) from None
            raise ConfigError(
                f"KITCHEN_BLOBS_URL={self.url}: access to {anchor!r} refused "
                f"({_one_line(exc)}); set credentials that may read and write it "
                "(e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            ) from None

    # ------------------------------------------------------------------ writes

    def write_dir(self, key: str, fill: Callable[[Path], None]) -> BlobRef:
        self._check_nesting(key)
        staging = self._staging()
        try:
            with _local_fault(self.cache, staging):
                fill(staging)
                check_filled(staging)
                sha, size = lfs.digest(staging)
            self._publish(key, staging, sha, size)
        finally:
            lfs.remove(staging)
        return BlobRef(key, sha, size)

    def _publish(self, key: str, staging: Path, sha: str, size: int) -> None:
        dest = self._remote(key)
        generation = temp_name("data", "gen")
        with self._storage(f"writing blob {key!r}", writing=True):
            if self._is_file(dest):
                self.fs.rm_file(dest)  # a file blob replaced by a folder: gone first
            for path in sorted(p for p in staging.rglob("*") if p.is_file()):
                rel = path.relative_to(staging).as_posix()
                self.fs.put_file(str(path), f"{dest}/{generation}/{rel}")
            marker = {"bytes": size, "generation": generation, "sha256": sha}
            data = json.dumps(marker, sort_keys=True).encode() + b"\n"
            self.fs.pipe_file(f"{dest}/{MARKER}", data)
            self._drop_generations(dest, keep=generation)

    def _drop_generations(self, dest: str, keep: str | None) -> None:
        for name in self._names(dest):
            parsed = parse_temp_name(name)
            if parsed is not None and parsed[1] == "gen" and name != keep:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm(f"{dest}/{name}", recursive=True)

    def _names(self, folder: str) -> builtins.list[str]:
        try:
            entries = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        return [str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries]

    def write_bytes(self, key: str, data: bytes) -> BlobRef:
        self._check_nesting(key)
        dest = self._remote(key)
        with self._storage(f"writing blob {key!r}", writing=True):
            if self._marker(key) is not None:
                self._delete_folder(dest)  # a folder blob replaced by a file: gone first
            self.fs.pipe_file(dest, data)
        sha, size = sha256_chunks([data])
        return BlobRef(key, sha, size)

    def _check_nesting(self, key: str) -> None:
        check_key(key)
        parts = key.split("/")[:-1]
        with self._storage(f"checking blob key {key!r}", writing=True):
            for i in range(1, len(parts) + 1):
                outer = "/".join(parts[:i])
                if self._is_file(self._remote(outer)) or self._marker(outer) is not None:
                    raise nested_error(key, outer)

    def _staging(self) -> Path:
        with _local_fault(self.cache, None):
            base = self.cache / ".staging"
            base.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=".fill-", dir=base))

    # ------------------------------------------------------------------ reads

    def exists(self, uri: str) -> bool:
        check_key(uri)
        with self._storage(f"looking up blob {uri!r}"):
            if self._marker(uri) is not None or self._is_file(self._remote(uri)):
                return True
        self.check_reachable()  # a bucket gone reads as missing too: that is a fault
        return False

    def local_path(self, uri: str) -> Path:
        """The blob downloaded into the cache, its digest checked against its marker."""
        path, whole = self._materialize(uri)
        if not whole:
            raise NotFound(
                f"blob {uri!r} under {self.url} does not match its marker (damaged or torn); "
                "write it again, or resume from an older checkpoint"
            )
        return path

    def _materialize(self, uri: str) -> tuple[Path, bool]:
        """``(local path, digest matches the marker)``; NotFound when there is no blob. A
        generation replaced while it was downloaded is read again from the new marker."""
        check_key(uri)
        for _ in range(3):
            with self._storage(f"reading blob {uri!r}"):
                marker = self._marker(uri)
                if marker is None:
                    return self._file_copy(uri), True
                try:
                    path, whole = self._folder_copy(uri, marker)
                except FileNotFoundError:
                    continue  # replaced under our feet: read the new marker
                if whole or self._marker(uri) == marker:
                    return path, whole

        raise BlobStoreUnavailable(
            f"blob store {self.url}: blob {uri!r} kept changing while it was read; try again"
        )

    def _folder_copy(self, uri: str, marker: dict[str, Any]) -> tuple[Path, bool]:
        expected = (str(marker["sha256"]), int(marker["bytes"]))
        generation = str(marker["generation"])
        if parse_temp_name(generation) is None:
            return self.cache / "blobs" / uri, False  # not a marker this store wrote
        final = self.cache / "blobs" / uri / generation
        if final.is_dir() and lfs.digest(final) == expected:
            return final, True
        source = f"{self._remote(uri)}/{generation}"
        download = self._staging()
        try:
            for remote in self.fs.find(source, withdirs=False):
                rel = _relative(str(remote), source)
                if not rel:
                    continue
                target = download / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(str(remote), str(target))
            got = lfs.digest(download)
            with _local_fault(self.cache, download):
                final.parent.mkdir(parents=True, exist_ok=True)
                lfs.remove(final)
                os.replace(download, final)
        finally:
            lfs.remove(download)
        return final, got == expected

    def _file_copy(self, uri: str) -> Path:
        try:
            data = self.fs.cat_file(self._remote(uri))
        except (FileNotFoundError, IsADirectoryError):
            self._confirm_missing(uri)
        target = self.cache / "files" / uri
        with _local_fault(self.cache, None):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent / temp_name(target.name, "tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return target

    def _confirm_missing(self, uri: str) -> NoReturn:
        """Raise NotFound for a blob a reachable store does not hold; an unreachable store (a
        bucket gone reads as missing too) raises ``BlobStoreUnavailable`` instead."""
        self.check_reachable()
        raise NotFound(f"no blob {uri!r} under {self.url}; check the URI or KITCHEN_BLOBS_URL")

    def read_bytes(self, uri: str) -> bytes:
        check_key(uri)
        with self._storage(f"reading blob {uri!r}"):
            if self._marker(uri) is not None:
                raise ConfigError(f"blob {uri!r} is a folder; open it with local_path(uri)")
            try:
                return bytes(self.fs.cat_file(self._remote(uri)))
            except (FileNotFoundError, IsADirectoryError):
                self._confirm_missing(uri)

    def verify(self, ref: BlobRef) -> bool:
        """True only if the blob is there and its bytes hash to ``ref``; a folder is
        downloaded (into the cache, which ``local_path`` then reuses) and hashed."""
        try:
            check_key(ref.uri)
        except ConfigError:
            return False
        with self._storage(f"reading blob {ref.uri!r}"):
            marker = self._marker(ref.uri)
            if marker is None:
                try:
                    data = self.fs.cat_file(self._remote(ref.uri))
                except (FileNotFoundError, IsADirectoryError):
                    self.check_reachable()
                    return False
                return sha256_chunks([data]) == (ref.sha256, ref.bytes)
            if (marker["sha256"], marker["bytes"]) != (ref.sha256, ref.bytes):
                return False
        path, whole = self._materialize(ref.uri)
        return whole and path.is_dir()

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys of whole blobs starting with ``prefix``, sorted; generations, torn folders
        (no marker) and other reserved names are skipped."""
        base = split_prefix(prefix)
        start = self._remote(base)
        with self._storage(f"listing {prefix!r}"):
            try:
                found = self.fs.find(start, withdirs=False)
            except FileNotFoundError:
                found = []
        rels = [_relative(str(p), self.root) for p in found]
        folders = {r.rpartition("/")[0] for r in rels if r.rpartition("/")[2] == MARKER}
        keys = set(folders)
        for rel in rels:
            parts = rel.split("/")
            if any(is_reserved(p) for p in parts):
                continue
            if any("/".join(parts[:i]) in folders for i in range(1, len(parts))):
                continue
            keys.add(rel)
        return iter(sorted(k for k in keys if k and k.startswith(prefix)))

    # ------------------------------------------------------------------ removal

    def delete(self, uri: str) -> None:
        """Remove a blob; a missing one is fine. A folder's marker goes first, so no reader
        sees it half-deleted."""
        check_key(uri)
        dest = self._remote(uri)
        with self._storage(f"deleting blob {uri!r}", writing=True):
            if self._marker(uri) is not None:
                self._delete_folder(dest)
            elif self._is_file(dest):
                self.fs.rm_file(dest)

    def _delete_folder(self, dest: str) -> None:
        with contextlib.suppress(FileNotFoundError):  # another deleter was first
            self.fs.rm_file(f"{dest}/{MARKER}")
        self._drop_generations(dest, keep=None)
        with contextlib.suppress(FileNotFoundError):
            if not self.fs.find(dest, withdirs=False):
                self.fs.rm(dest, recursive=True)

    def sweep_temp(self, prefix: str = "", *, older_than_s: float = 0.0) -> builtins.list[str]:
        """Remove generations that no marker names (left by writers killed mid-upload), untouched
        for ``older_than_s``; return their keys. Old cached generations go too."""
        base = split_prefix(prefix)
        cutoff = time.time() - older_than_s
        swept: builtins.list[str] = []
        with self._storage(f"sweeping {prefix!r}", writing=True):
            try:
                found = self.fs.find(self._remote(base), withdirs=False, detail=True)
            except FileNotFoundError:
                found = {}
            stale: dict[str, bool] = {}
            for path, info in dict(found).items():
                rel = _relative(str(path), self.root)
                parts = rel.split("/")
                for i, part in enumerate(parts[:-1]):
                    parsed = parse_temp_name(part)
                    if parsed is not None and parsed[1] == "gen":
                        gen_key = "/".join(parts[: i + 1])
                        young = _mtime(info) > cutoff
                        stale[gen_key] = stale.get(gen_key, True) and not young
                        break
            for gen_key, old in sorted(stale.items()):
                key, _, name = gen_key.rpartition("/")
                marker = self._marker(key) if key else None
                named = marker is not None and marker.get("generation") == name
                if old and not named and gen_key.startswith(prefix):
                    self.fs.rm(self._remote(gen_key), recursive=True)
                    swept.append(gen_key)
        return swept


def _relative(path: str, base: str) -> str:
    """``path`` relative to ``base``, whatever leading slash the backend gives either."""
    path, base = path.strip("/"), base.strip("/")
    return path[len(base) :].lstrip("/") if base else path


def _mtime(info: dict[str, Any]) -> float:
    for field in ("LastModified", "mtime", "created", "updated"):
        value = info.get(field)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        with contextlib.suppress(TypeError, ValueError):
            return float(value)
    return 0.0


def _no_credentials(exc: BaseException) -> bool:
    """botocore found no credentials at all (its NoCredentialsError, PartialCredentialsError)."""
    return "Credentials" in type(exc).__name__


def _protocol(fs: Any) -> str:
    proto = fs.protocol
    return str(proto[0] if isinstance(proto, (tuple, builtins.list)) else proto)


def _open(url: str) -> tuple[Any, str]:
    """The fsspec filesystem and root path of ``url``, its listing cache off (two machines
    must see each other's writes) and, for s3, botocore's timeouts bounded."""
    try:
        import fsspec.core
    except ImportError:
        raise ConfigError(
            f"KITCHEN_BLOBS_URL={url} needs fsspec; install kitchen-posttrain[s3] "
            "(or fsspec with the backend of that URL)"
        ) from None
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    netloc = url.split("://", 1)[-1].split("/", 1)[0]
    if "@" in netloc and ":" in netloc.split("@", 1)[0]:
        raise ConfigError(
            "KITCHEN_BLOBS_URL holds credentials (USER:SECRET@…), which the run would record; "
            "give them the way the backend reads them instead (e.g. AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY)"
        )
    options: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}
    if protocol in ("s3", "s3a"):
        config: dict[str, Any] = dict(S3_CONFIG)
        if os.environ.get("AWS_MAX_ATTEMPTS") or os.environ.get("AWS_RETRY_MODE"):
            del config["retries"]  # botocore's own retry settings, where set, win
        options["config_kwargs"] = config
    if protocol in ("file", "local"):
        options["auto_mkdir"] = True
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        raise ConfigError(
            f"KITCHEN_BLOBS_URL={url}: its fsspec backend is not installed ({_one_line(exc)}); "
            "install it, e.g. kitchen-posttrain[s3] for s3://"
        ) from None
    except ValueError as exc:
        raise ConfigError(
            f"KITCHEN_BLOBS_URL={url} is not a URL fsspec opens ({_one_line(exc)}); "
            "set it to e.g. s3://BUCKET/PREFIX"
        ) from None
    return fs, str(root)


@contextlib.contextmanager
def _local_fault(cache: Path, probe: Path | None) -> Iterator[None]:
    """A full or failing local disk under the cache is the machine's fault: its own type."""
    try:
        yield
    except KitchenError:
        raise
    except Exception as exc:
        fault = storage_fault(exc, f"blob cache {cache}", path=probe)
        if fault is None:
            raise
        raise fault from exc


def is_url(value: str) -> bool:
    """Whether a KITCHEN_BLOBS_URL value names an fsspec URL rather than a folder."""
    return "://" in value


def create_store(config: Any, home: Path, location: dict[str, Any] | None = None) -> Any:
    """The manifest's factory: the URL the run recorded (``location``), else KITCHEN_BLOBS_URL;
    downloads are cached under KITCHEN_HOME."""
    from kitchen import settings

    url = (location or {}).get("url") or settings.current().blobs_url
    if not url:
        raise ConfigError(
            "the 'fsspec' blob store needs a URL: set KITCHEN_BLOBS_URL, e.g. s3://BUCKET/PREFIX"
        )
    return FsspecBlobStore(str(url), Path(home) / CACHE)


__all__ = ["CACHE", "FsspecBlobStore", "create_store", "is_url"]
