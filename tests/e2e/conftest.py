from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import Kitchen, make_kitchen


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def kitchen(home: Path) -> Kitchen:
    return make_kitchen(home)
