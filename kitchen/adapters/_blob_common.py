"""Keys, reserved names and the sha256 scheme that every blob store shares.

Kept apart from the store so that a blob store of another kind keeps the same scheme: a blob
written by one verifies under another, and ``kitchen replay --verify`` recomputes the same
digest from a plain folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from kitchen.errors import ConfigError

MARKER = ".kitchen-blob"
"""File at the top of every folder blob, written last: a folder without it is not a blob
(a writer was killed before the end). It holds the digest as JSON, for people reading it."""

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.kitchen-(?P<kind>tmp|old|gen)-[0-9a-f]{32}$")
_CHUNK = 1 << 20


def temp_name(name: str, kind: str) -> str:
    """A hidden sibling name for ``name``: ``tmp`` while written, ``old`` while replaced,
    ``gen`` for one generation of a folder blob's files on a store without a rename."""
    return f".{name}.kitchen-{kind}-{uuid.uuid4().hex}"


def parse_temp_name(name: str) -> tuple[str, str] | None:
    """``(original name, kind)`` of a temp entry, or None for an ordinary name."""
    m = _TEMP_RE.match(name)
    return (m["name"], m["kind"]) if m else None


def is_reserved(name: str) -> bool:
    return name == MARKER or parse_temp_name(name) is not None


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative POSIX path; raise ConfigError otherwise.

    Keys become file names under the store's root, so anything that could escape the
    root or collide with the store's own temp names is refused.
    """
    why = _key_problem(key)
    if why:
        hint = "use a relative path like 'run-1/checkpoints/step-10'"
        raise ConfigError(f"blob key {key!r} {why}; {hint}")
    return key


def nested_error(key: str, outer: str) -> ConfigError:
    """Writing inside another blob would change that blob's digest under its feet."""
    return ConfigError(f"blob key {key!r} lies inside blob {outer!r}; pick a key beside it")


def _key_problem(key: str) -> str | None:
    if not key:
        return "is empty"
    if key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        return "is absolute"
    if "\\" in key or "\0" in key:
        return "contains a backslash or NUL"
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, '.' or '..' part"
    if any(is_reserved(p) for p in parts):
        return "uses a name the blob store reserves for itself"
    return None


def split_prefix(prefix: str) -> str:
    """The folder part of a listing prefix ('' for the root), checked like a key."""
    base = prefix.rpartition("/")[0]
    return check_key(base) if base else ""


def sha256_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    for chunk in chunks:
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def read_chunks(f: IO[bytes]) -> Iterator[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


def manifest_digest(entries: Iterable[tuple[str, str, int]]) -> tuple[str, int]:
    """Digest of a folder from ``(relative path, file sha256, file bytes)`` entries.

    The lines ``"<sha256>  <path>\\n"`` (``sha256sum``'s format), ordered by path, are
    hashed together; ``bytes`` is the sum of the files' sizes.
    """
    ordered = sorted(entries)
    text = "".join(f"{digest}  {rel}\n" for rel, digest, _ in ordered)
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), sum(n for _, _, n in ordered)


def marker_bytes(sha256: str, size: int) -> bytes:
    return json.dumps({"bytes": size, "sha256": sha256}, sort_keys=True).encode() + b"\n"


def check_filled(folder: Path) -> None:
    """Refuse what a fill may not leave behind: our marker name, or symlinks.

    Symlinks would make the digest depend on files outside the blob.
    """
    if (folder / MARKER).exists() or (folder / MARKER).is_symlink():
        raise ConfigError(f"a blob folder may not contain {MARKER!r}: the store writes that name")
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                rel = path.relative_to(folder).as_posix()
                raise ConfigError(f"blob folder holds a symlink {rel!r}; copy the file instead")
