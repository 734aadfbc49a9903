"""API keys: made and revoked by ``kitchen serve keys``, stored only as sha256 hashes.

A key is ``tml-`` + 43 url-safe random characters (the SDK refuses keys without the prefix).
It is shown once, at creation; ``keys.json`` under ``KITCHEN_HOME/serve`` keeps its id, name,
hash and dates. The server re-reads the file when it changes, so a revocation takes effect on
the next request without a restart. A key's *id* (``key-…``), never the key, is what events,
folders and logs name.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from kitchen.errors import ConfigError, NotFound

PREFIX = "tml-"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    sha256: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def keys_file(serve_dir: Path) -> Path:
    return serve_dir / "keys.json"


def read(serve_dir: Path) -> list[KeyRecord]:
    path = keys_file(serve_dir)
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["keys"]
        return [KeyRecord(**row) for row in rows]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a valid keys file: {exc}; restore it") from None


def _write(serve_dir: Path, records: list[KeyRecord]) -> None:
    """Temp file + fsync + rename, mode 0600: a crash leaves the old file or the new one."""
    serve_dir.mkdir(parents=True, exist_ok=True)
    path = keys_file(serve_dir)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = json.dumps({"keys": [asdict(r) for r in records]}, indent=2, sort_keys=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def create(serve_dir: Path, name: str = "") -> tuple[str, KeyRecord]:
    """A new key and its record; the key itself is returned once and stored nowhere."""
    key = PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    record = KeyRecord(f"key-{secrets.token_hex(4)}", name, digest(key), now)
    _write(serve_dir, [*read(serve_dir), record])
    return key, record


def revoke(serve_dir: Path, key_id: str) -> KeyRecord:
    records = read(serve_dir)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for i, record in enumerate(records):
        if record.id == key_id:
            if record.active:
                records[i] = KeyRecord(**{**asdict(record), "revoked_at": now})
                _write(serve_dir, records)
            return records[i]
    raise NotFound(f"no key {key_id!r}; see `kitchen serve keys list`")


class KeyRing:
    """The server's view of keys.json, reloaded whenever the file changes."""

    def __init__(self, serve_dir: Path) -> None:
        self._dir = serve_dir
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, KeyRecord] = {}
        self._by_id: dict[str, KeyRecord] = {}

    def _refresh(self) -> None:
        try:
            st = keys_file(self._dir).stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp == self._stamp and (stamp is not None or not self._by_hash):
                return
            records = read(self._dir)
            self._by_hash = {r.sha256: r for r in records if r.active}
            self._by_id = {r.id: r for r in records}
            self._stamp = stamp

    def owner_of(self, key: str | None) -> str | None:
        """The id of the active key ``key``, or None (missing, malformed, unknown, revoked)."""
        if not key or not key.startswith(PREFIX) or len(key) > 200:
            return None
        self._refresh()
        record = self._by_hash.get(digest(key))
        return record.id if record is not None else None

    def is_active(self, key_id: str) -> bool:
        self._refresh()
        record = self._by_id.get(key_id)
        return record is not None and record.active
