"""The distribution as a user gets it: a wheel with every package and asset, no symlinks.

store/, recipes/ and migrations/ are installed as kitchen.store, kitchen.recipes and
kitchen.migrations through setuptools' package-dir mapping; the explicit package list in
pyproject.toml must name every package folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def _setuptools() -> dict[str, object]:
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"])


def test_every_package_folder_is_listed() -> None:
    config = _setuptools()
    mapping = dict(config["package-dir"])  # type: ignore[call-overload]
    found = set()
    for package, folder in mapping.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    assert sorted(found) == sorted(config["packages"])  # type: ignore[call-overload]


def test_no_file_is_a_symlink() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert [line for line in listed.splitlines() if line.startswith("120000")] == []


@pytest.mark.slow
def test_the_wheel_installs_and_runs(tmp_path: Path) -> None:
    """Build the wheel, install it without dependencies into a fresh virtualenv that sees this
    interpreter's packages, and run `kitchen db upgrade` and `kitchen recipes` from it."""
    # Built from a copy of the files git knows, so no build/ folder left in the checkout
    # can put into the wheel what the configuration would not.
    source = tmp_path / "source"
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        if (ROOT / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, source / rel)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
        timeout=600,
    )
    [wheel] = list(wheels.glob("kitchen_posttrain-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    # This interpreter is itself a virtualenv: its packages (the dependencies) are put on the
    # new one's path by a .pth line; its own editable kitchen is not (no .pth of it is read).
    site = next((venv / "lib").glob("python3*/site-packages"))
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (site / "kitchen-test-deps.pth").write_text("\n".join(deps) + "\n")
    pip = venv / "bin" / "pip"
    subprocess.run([str(pip), "install", "-q", "--no-deps", str(wheel)], check=True, timeout=600)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITCHEN_", "PYTHONPATH"))}
    env["KITCHEN_HOME"] = str(home)
    kitchen = str(venv / "bin" / "kitchen")
    # The installed copy is the one imported, not this checkout.
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import kitchen.store, kitchen.recipes;"
            "print(kitchen.store.__file__); print(kitchen.recipes.__file__)",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(str(venv) in path for path in where), where
    upgraded = subprocess.run(
        [kitchen, "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert (home / "kitchen.db").is_file()
    listed = subprocess.run(
        [kitchen, "recipes"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert "sl_basic" in listed.stdout
    # The embedded model, tokenizer and data sets are in the wheel.
    assets = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "from kitchen.embedded import resolve_model; import pathlib;"
            "p = pathlib.Path(resolve_model('kitchen/tiny'));"
            "print((p / 'model.safetensors').is_file(), (p / 'tokenizer.json').is_file())",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert assets == ["True", "True"]
