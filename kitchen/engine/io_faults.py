"""Which exceptions mean that the machine's storage failed, not the run: by what really arrives.

A full disk, a full quota, a filesystem turned read-only or a failing device reaches kitchen
through whichever library was writing, each in its own words:

- Python's own I/O (``open``, ``os.write``, ``shutil``): ``OSError`` with ``errno`` set;
- safetensors (Rust): ``SafetensorError: Error while serializing: I/O error: No space left on
  device (os error 28)`` — the errno only in the message;
- pyarrow: ``OSError`` whose message says ``[errno 28]``;
- ``torch.save`` to a path: ``RuntimeError: … unexpected pos 576 vs 534``, with no errno at
  all (its context is ``basic_ios::clear: iostream error``);
- SQLite: ``database or disk is full`` (``SQLITE_FULL``), ``attempt to write a readonly
  database`` (``SQLITE_READONLY``), ``disk I/O error`` (``SQLITE_IOERR``);
- Postgres: SQLSTATE ``53100`` disk_full, ``58030`` io_error, ``25006``
  read_only_sql_transaction (a server that only accepts reads).

:func:`storage_fault` reads all of these, from the exception, its ``__cause__`` and
``__context__`` chain and a driver error's ``orig``, and returns the matching
``InfrastructureError``: ``DiskFull`` (ENOSPC, EDQUOT), ``ReadOnlyStorage`` (EROFS) or
``StorageIOError`` (EIO), whose one line names what could not be written and what to do.
Where nothing in the exception says why a write failed (``torch.save``), a caller that knows
the folder it was writing gives it as ``path`` and the filesystem itself is asked
(:func:`probe`): mounted read-only, or no room left. Everything else, a corrupt or invalid
artefact included, is not a fault: it stays an error of the run.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path

from kitchen.errors import (
    DiskFull,
    InfrastructureError,
    KitchenError,
    ReadOnlyStorage,
    StorageIOError,
)

FAULT_ERRNOS: dict[int, type[InfrastructureError]] = {
    errno.ENOSPC: DiskFull,
    errno.EDQUOT: DiskFull,
    errno.EROFS: ReadOnlyStorage,
    errno.EIO: StorageIOError,
}
"""The ``OSError`` numbers that are the storage's fault, and the error each becomes."""

ADVICE: dict[type[InfrastructureError], str] = {
    DiskFull: "free space",
    ReadOnlyStorage: "make it writable again",
    StorageIOError: "check the disk",
}

LOW_SPACE_BYTES = 1 << 20
"""Below this much room, a write that failed without saying why is taken for a full disk."""

_SQLITE_CODES = {13: errno.ENOSPC, 8: errno.EROFS, 10: errno.EIO}  # FULL, READONLY, IOERR
_SQLITE_TEXT = {
    "database or disk is full": errno.ENOSPC,
    "attempt to write a readonly database": errno.EROFS,
    "disk i/o error": errno.EIO,
}
_SQLSTATES = {"53100": errno.ENOSPC, "58030": errno.EIO, "25006": errno.EROFS}
_OS_ERROR = re.compile(r"\(os error (\d+)\)|\[errno (\d+)\]", re.IGNORECASE)
_STRERRORS = {os.strerror(code).lower(): code for code in FAULT_ERRNOS}


def storage_fault(
    exc: BaseException,
    what: str | None = None,
    *,
    path: Path | str | None = None,
    then: str = "resume",
) -> InfrastructureError | None:
    """``exc`` as a fault of the storage, or None when it is something else.

    ``what`` names what was being written (a path, a blob, a database); without it the
    filename an ``OSError`` carries is used. ``path``: the folder or file being written, asked
    about its filesystem when the exception itself says nothing. ``then``: what to do once the
    fault is gone (``resume`` in a run, ``try again`` for a command).
    """
    found = _infrastructure_in(exc)
    if found is not None or isinstance(exc, KitchenError):
        return found
    code = fault_errno(exc)
    if code is None and path is not None:
        code = probe(path)
    if code is None:
        return None
    kind = FAULT_ERRNOS[code]
    target = what or _filename(exc)
    where = f" {target}" if target else ""
    fault = kind(f"cannot write{where}: {os.strerror(code)}; {ADVICE[kind]} and {then}")
    fault.__cause__ = exc
    return fault


def fault_errno(exc: BaseException) -> int | None:
    """The storage errno (ENOSPC, EDQUOT, EROFS, EIO) an exception carries, wherever the
    library that raised it put it; None when it carries none."""
    for e in _chain(exc):
        code = _errno_of(e)
        if code is not None:
            return code
    return None


def probe(path: Path | str) -> int | None:
    """Ask the filesystem holding ``path``: EROFS when it is mounted read-only, ENOSPC when
    less than ``LOW_SPACE_BYTES`` are left to this user; else None."""
    target = Path(path)
    while not target.exists() and target != target.parent:
        target = target.parent
    try:
        st = os.statvfs(target)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return errno.EROFS
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return errno.ENOSPC if blocks * st.f_frsize < LOW_SPACE_BYTES else None


def _errno_of(e: BaseException) -> int | None:
    if isinstance(e, OSError) and e.errno in FAULT_ERRNOS:
        return e.errno
    sqlite = getattr(e, "sqlite_errorcode", None)
    if isinstance(sqlite, int) and (sqlite & 0xFF) in _SQLITE_CODES:
        return _SQLITE_CODES[sqlite & 0xFF]
    sqlstate = getattr(e, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate in _SQLSTATES:
        return _SQLSTATES[sqlstate]
    if type(e).__module__.startswith("sqlalchemy"):
        return None  # its message holds the statement's parameters: only its ``orig`` counts
    return _errno_in_text(str(e).lower())


def _errno_in_text(text: str) -> int | None:
    for match in _OS_ERROR.finditer(text):
        code = int(match.group(1) or match.group(2))
        if code in FAULT_ERRNOS:
            return code
    for words, code in (*_SQLITE_TEXT.items(), *_STRERRORS.items()):
        if words in text:
            return code
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then its causes and contexts (a driver error's ``orig`` too), once each."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for nxt in (e.__cause__, e.__context__, getattr(e, "orig", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _infrastructure_in(exc: BaseException) -> InfrastructureError | None:
    if isinstance(exc, InfrastructureError):
        return exc
    if isinstance(exc, KitchenError):
        return None  # an error of the run, said on purpose: not second-guessed
    for e in _chain(exc):
        if isinstance(e, InfrastructureError):
            return e
    return None


def _filename(exc: BaseException) -> str | None:
    for e in _chain(exc):
        if isinstance(e, OSError) and e.filename:
            return str(e.filename)
    return None


__all__ = ["FAULT_ERRNOS", "LOW_SPACE_BYTES", "fault_errno", "probe", "storage_fault"]
