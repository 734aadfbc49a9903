"""Fixtures of the real-filesystem fault tests: a tmpfs per test, unmounted after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.disk.realfs import Tmpfs


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Tmpfs]]:
    """``tmpfs(name, size)`` mounts a tmpfs at tmp_path/name (skips where mounting is not
    permitted); every one is unmounted when the test ends."""
    mounted: list[Tmpfs] = []

    def make(name: str = "fs", size: str = "16m") -> Tmpfs:
        fs = Tmpfs(tmp_path / name, size)
        mounted.append(fs)
        return fs

    yield make
    for fs in reversed(mounted):
        fs.close()
