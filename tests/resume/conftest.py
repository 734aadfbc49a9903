"""The reference result of the crash-and-resume tests: an uninterrupted run."""

from __future__ import annotations

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import SMALL_SL_CONFIG, adapter_sha


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The final adapter's sha256 of an uninterrupted run with SMALL_SL_CONFIG."""
    home = tmp_path_factory.mktemp("reference")
    r = make_kitchen(home)("run", "sl_basic", *SMALL_SL_CONFIG, "--run-id", "reference")
    assert r.code == 0, r.stderr
    return adapter_sha(home, "reference")
