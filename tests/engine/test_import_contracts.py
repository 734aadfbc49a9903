"""The layers of docs/architecture.md hold, and the import contracts that say so can actually fail.

``lint-imports`` (import-linter) reads the contracts from pyproject.toml. The checked tree is
the package laid out as it is installed (``tools/assemble.py``) in a temporary folder, put
first on PYTHONPATH, so a forbidden import can be planted in it without touching the
checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _copy(tmp_path: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from assemble import assemble
    finally:
        sys.path.pop(0)
    return assemble(tmp_path / "tree")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [LINT], cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_checkout_keeps_every_contract(tmp_path: Path) -> None:
    r = _lint(_copy(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
    assert len(contracts) == 7  # written by hand: a contract lost from pyproject fails here
    assert f"{len(contracts)} kept, 0 broken" in r.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        (
            "kitchen/workflows/supervised/stages/get_batch.py",
            "import kitchen.engine.runner",
            "workflows and their stages see only the stage API, ports, types and renderers",
        ),
        (
            "kitchen/workflows/common/save_checkpoint.py",
            "import kitchen.adapters.blobs",
            "workflows and their stages see only the stage API, ports, types and renderers",
        ),
        (
            "kitchen/engine/runner.py",
            "import torch",
            "the engine never imports an adapter or the training stack",
        ),
        (
            "kitchen/engine/state.py",
            "import kitchen.adapters.local_torch",
            "the engine never imports an adapter or the training stack",
        ),
        (
            "kitchen/stage_api.py",
            "import kitchen.engine.launch",
            "api above cli above launch above workflows above the stage API",
        ),
        (
            "kitchen/cli/run.py",
            "import kitchen.api",
            "api above cli above launch above workflows above the stage API",
        ),
        (
            "kitchen/serve/journal.py",
            "from kitchen.store import NewEvent",
            "serve reaches the backend and the log through ports",
        ),
        (
            "kitchen/serve/model.py",
            "import kitchen.adapters.local_torch.worker",
            "serve reaches the backend and the log through ports",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, planted: str, contract: str
) -> None:
    tree = _copy(tmp_path)
    assert _lint(tree).returncode == 0  # the copy itself is clean
    target = tree / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{planted}  # planted\n")
    r = _lint(tree)
    assert r.returncode != 0
    assert f"{contract} BROKEN" in r.stdout
