"""metrics.jsonl in the run folder: one line per logged step and attempt, for plain tools."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kitchen import faults
from kitchen.errors import DISK_FULL_ERRNOS, DiskFull


def append_jsonl(run_dir: Path, attempt: int, steps: Mapping[int, Mapping[str, Any]]) -> None:
    """Append the steps' lines together. A write that fails (a full disk) is cut back to
    the file's size before it, so the file never ends in a torn line; a full disk or quota is
    ``DiskFull``, which ends the attempt resumable."""
    if not steps:
        return
    text = "".join(
        json.dumps({"step": step, "attempt": attempt, **metrics}) + "\n"
        for step, metrics in sorted(steps.items())
    )
    path = run_dir / "metrics.jsonl"
    data = text.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            faults.point("metrics:write")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            if exc.errno in DISK_FULL_ERRNOS:
                raise DiskFull(
                    f"cannot append to {path}: {os.strerror(exc.errno)}; free space and resume"
                ) from exc
            raise
    finally:
        os.close(fd)
