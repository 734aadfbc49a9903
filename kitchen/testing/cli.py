"""Helpers for end-to-end tests that drive the real ``kitchen`` console script."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


Kitchen = Callable[..., Result]


def make_kitchen(
    home: Path, db_url: str | None = None, launcher: Sequence[str] | None = None
) -> Kitchen:
    """A function running ``kitchen ARGS`` with KITCHEN_HOME (and KITCHEN_DB_URL) set; with a
    ``launcher`` (``make_torchrun``), ``LAUNCHER… ARGS`` instead."""
    exe = [*launcher] if launcher is not None else [shutil.which("kitchen") or "kitchen"]

    def run(*args: str, timeout: float = 600, extra_env: dict[str, str] | None = None) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KITCHEN_", "OTEL_"))}
        env["KITCHEN_HOME"] = str(home)
        if db_url:
            env["KITCHEN_DB_URL"] = db_url
        env.update(extra_env or {})
        proc = subprocess.run(
            [*exe, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def make_torchrun(
    home: Path, nproc: int = 2, max_restarts: int = 0, db_url: str | None = None
) -> Kitchen:
    """``torchrun --standalone --nproc-per-node NPROC --max-restarts N -m kitchen ARGS``: one
    run on several real processes (gloo on CPU), on a free port of this machine."""
    torchrun = shutil.which("torchrun") or "torchrun"
    launcher = [
        torchrun,
        "--standalone",
        f"--nproc-per-node={nproc}",
        f"--max-restarts={max_restarts}",
        "-m",
        "kitchen",
    ]
    return make_kitchen(home, db_url, launcher)


def one_line_error(r: Result) -> str:
    """Assert a failure was reported as one clear line with no traceback; return the line."""
    assert r.code != 0, r
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("kitchen: error: "), lines[0]
    return lines[0]
