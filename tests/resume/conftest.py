"""The reference result of the crash-and-resume tests: an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import make_kitchen
from kitchen.testing.runs import SMALL_SL_CONFIG, adapter_sha


@pytest.fixture(scope="session")
def reference_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The KITCHEN_HOME of an uninterrupted run of SMALL_SL_CONFIG, run id ``reference``."""
    home = tmp_path_factory.mktemp("reference")
    r = make_kitchen(home)("run", "sl_basic", *SMALL_SL_CONFIG, "--run-id", "reference")
    assert r.code == 0, r.stderr
    return home


@pytest.fixture(scope="session")
def reference(reference_home: Path) -> str:
    """The final adapter's sha256 of an uninterrupted run with SMALL_SL_CONFIG."""
    return adapter_sha(reference_home, "reference")
