"""metrics.jsonl in the run folder: one line per logged step and attempt, for plain tools."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kitchen.engine import faults
from kitchen.engine.io_faults import storage_fault


def append_jsonl(run_dir: Path, attempt: int, steps: Mapping[int, Mapping[str, Any]]) -> None:
    """Append the steps' lines together. A write that fails (a full disk) is cut back to
    the file's size before it, so the file never ends in a torn line; a full disk or quota
    (``DiskFull``), a read-only filesystem (``ReadOnlyStorage``) or a failing device
    (``StorageIOError``) ends the attempt resumable, in one line naming the file."""
    if not steps:
        return
    text = "".join(
        json.dumps({"step": step, "attempt": attempt, **metrics}) + "\n"
        for step, metrics in sorted(steps.items())
    )
    path = run_dir / "metrics.jsonl"
    data = text.encode("utf-8")
    with _storage_faults(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        with _storage_faults(path):
            try:
                faults.point("metrics:write")
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def _storage_faults(path: Path) -> Iterator[None]:
    """A full, read-only or failing disk as the storage's fault, naming the file."""
    try:
        yield
    except OSError as exc:
        fault = storage_fault(exc, str(path))
        if fault is None:
            raise
        raise fault from exc
