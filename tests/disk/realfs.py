"""Real filesystems for the fault tests: a tmpfs of a chosen size, filled, enlarged, made
read-only and writable again, and a ``kitchen`` command stopped at a named point meanwhile.

Mounting needs root (and a kernel that lets this process mount): where it is not permitted,
the test is skipped with the reason. Nothing here fakes an error: a write on a full tmpfs
really fails with ENOSPC, one on a read-only tmpfs with EROFS, in whatever words the library
that writes uses.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kitchen.testing.cli import Result

PAGE = 4096


class Tmpfs:
    """A tmpfs mounted at ``path``; ``close`` unmounts it."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        if shutil.which("mount") is None:
            pytest.skip("no mount command on this machine")
        path.mkdir(parents=True, exist_ok=True)
        r = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
        if r.returncode != 0:
            why = r.stderr.strip().splitlines()[0] if r.stderr.strip() else f"exit {r.returncode}"
            pytest.skip(f"cannot mount a tmpfs here: {why}")
        self._fillers = 0

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Write a file that leaves exactly ``leave`` bytes (whole pages) of room."""
        assert leave % PAGE == 0, leave
        todo = self.free() - leave
        assert todo >= 0, (self.free(), leave)
        self._fillers += 1
        chunk = b"\0" * (1 << 20)
        with open(self.path / f".filler-{self._fillers}", "wb") as f:
            while todo:
                todo -= f.write(chunk[: min(todo, len(chunk))])
        assert self.free() == leave, (self.free(), leave)

    def resize(self, size: str) -> None:
        """Enlarge (or shrink) the filesystem in place: ``mount -o remount,size=``."""
        self._remount(f"size={size}")

    def read_only(self) -> None:
        """Remount read-only; while a file on it is open for writing the kernel answers
        EBUSY, so the remount is tried again until the writer has closed it."""
        self._remount("ro")

    def writable(self) -> None:
        self._remount("rw")

    def _remount(self, option: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            r = _mount("-o", f"remount,{option}", str(self.path))
            if r.returncode == 0:
                return
            if "busy" not in r.stderr.lower() or time.monotonic() > deadline:
                raise AssertionError(f"remount,{option} of {self.path}: {r.stderr.strip()}")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run(["umount", str(self.path)], capture_output=True, check=False)
        if os.path.ismount(self.path):  # something still holds it: detach it lazily
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


def kitchen_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITCHEN_", "OTEL_"))}
    env["KITCHEN_HOME"] = str(home)
    env.update(extra)
    return env


def stopped_at(point: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """``kitchen ARGS`` in the background, returned once it has stopped itself at ``point``
    (``KITCHEN_FAULT=point=SIGSTOP``), between two writes: the test changes the filesystem
    under it, then ``carry_on`` lets it go."""
    exe = shutil.which("kitchen") or "kitchen"
    proc = subprocess.Popen(
        [exe, *args],
        env={**env, "KITCHEN_FAULT": f"{point}=SIGSTOP"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not _stopped(proc.pid):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"kitchen never stopped at {point}: {proc.communicate()[1]}")
        time.sleep(0.02)
    return proc


def carry_on(proc: subprocess.Popen[str]) -> Result:
    os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=300)
    return Result(proc.returncode, out, err)


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "T"
