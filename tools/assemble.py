"""Lay the package out in a folder as it is installed, for the tools that read files.

``store/``, ``recipes/`` and ``migrations/`` are installed as ``kitchen.store``,
``kitchen.recipes`` and ``kitchen.migrations`` (the ``package-dir`` mapping in
pyproject.toml). Python finds them through the installed package, but mypy and
import-linter read folders: this copies the tree the way the mapping lays it out, with
pyproject.toml beside it, so both check exactly what ships.

    python tools/assemble.py DEST      # then: cd DEST && mypy kitchen && lint-imports
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "assets")


def assemble(dest: Path) -> Path:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    if dest.exists():
        shutil.rmtree(dest)
    for package, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        shutil.copytree(ROOT / folder, dest / package.replace(".", "/"), ignore=SKIP)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


if __name__ == "__main__":
    print(assemble(Path(sys.argv[1]).resolve()))
