"""A bench script's figures for an earlier commit and for the working tree, interleaved.

The earlier commit is checked out into a temporary worktree and imported from there (its
``kitchen`` first on PYTHONPATH); the script itself is the working tree's, so both sides are
measured the same way. Rounds alternate A, B, A, B … so that a machine that gets busier or
quieter moves both sides alike; the report is each side's median and the ratio B / A.

    python bench/ab.py 2a44fe7 bench/runner_cost.py --rounds 5 --steps 300 --repeats 1

(arguments ab.py does not know go to the script).

The script must print one JSON line ``{name: {metric: value}}`` when given ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(script: str, args: list[str], pythonpath: Path) -> dict[str, dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    out = subprocess.run(
        [sys.executable, script, *args, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def lay_out(tree: Path) -> None:
    """Put the checkout's store/, recipes/ and migrations/ under its kitchen/ as they are
    installed, so that PYTHONPATH alone imports all of that commit (the installed package's
    own mapping would otherwise supply the working tree's kitchen.store)."""
    mapping = tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    for package, folder in mapping.items():
        target = tree / package.replace(".", "/")
        if package != "kitchen" and not target.exists():
            shutil.copytree(tree / folder, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="the earlier commit (A)")
    parser.add_argument("script", help="a bench script that accepts --json")
    parser.add_argument("--rounds", type=int, default=5)
    ns, rest = parser.parse_known_args()  # the rest goes to the script
    args = [a for a in rest if a != "--"]
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch) / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), ns.before],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        lay_out(tree)
        try:
            runs: dict[str, list[dict[str, dict[str, float]]]] = {"A": [], "B": []}
            for r in range(ns.rounds):
                runs["A"].append(measure(ns.script, args, tree))
                runs["B"].append(measure(ns.script, args, ROOT))
                print(f"round {r + 1}: A {runs['A'][-1]}  B {runs['B'][-1]}", file=sys.stderr)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
    print(f"\nA = {ns.before}, B = working tree, {ns.rounds} rounds interleaved (medians)")
    print("| database | metric | A | B | B / A |")
    print("|---|---|---|---|---|")
    for name in runs["A"][0]:
        for metric in runs["A"][0][name]:
            a = statistics.median(x[name][metric] for x in runs["A"])
            b = statistics.median(x[name][metric] for x in runs["B"])
            print(f"| {name} | {metric} | {a:.3f} | {b:.3f} | {b / a:.3f} |")


if __name__ == "__main__":
    main()
