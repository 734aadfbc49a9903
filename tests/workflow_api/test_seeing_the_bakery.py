"""The commands that look at runs work on a workflow they have never heard of.

A real bakery run (the plugin workflow of test_plugin_workflow.py) killed mid-run and resumed
with a burnt step, driven by the real engine and CLI: plot, diff, report, export and verify
see its attempts, its superseded step and its determinism mismatch through the neutral facts
alone — no stage or metric of the bakery is named in their code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import Kitchen, make_kitchen

PLUGIN = Path(__file__).parent / "plugin"
ROOT = Path(__file__).parents[2]


@pytest.fixture
def kitchen(tmp_path: Path) -> Kitchen:
    run = make_kitchen(tmp_path / "home")

    def with_plugin(*args: str, extra_env: dict[str, str] | None = None) -> Any:
        return run(*args, extra_env={"PYTHONPATH": f"{PLUGIN}:{ROOT}", **(extra_env or {})})

    return with_plugin


@pytest.fixture
def bakes(kitchen: Kitchen) -> None:
    """``plain``: six steps, one attempt. ``uneven``: killed before shelving step 1's loaf,
    resumed from the start with step 3 burnt (+1.0 on its loss): a determinism mismatch."""
    assert kitchen("run", "bake_basic", "--run-id", "plain").code == 0
    env = {"KITCHEN_FAULT": "stage:shelve:before@2"}
    assert kitchen("run", "bake_basic", "--run-id", "uneven", extra_env=env).code == -9
    resumed = kitchen("resume", "uneven", extra_env={"BAKERY_BURN_STEP": "3"})
    assert resumed.code == 0, resumed.stderr


def test_plot_diff_report_export_verify_on_a_plugin_workflow(
    kitchen: Kitchen, bakes: None, tmp_path: Path
) -> None:
    plot = kitchen("plot", "plain", "uneven")
    assert plot.code == 0, plot.stderr
    assert plot.stdout.splitlines()[0] == "crumb_loss"
    assert "  * plain crumb_loss: 6 points" in plot.stdout
    assert "  o uneven crumb_loss: 6 points, " in plot.stdout  # and its superseded steps

    diff = kitchen("diff", "plain", "uneven")
    assert diff.code == 0, diff.stderr
    rows = [ln.split() for ln in diff.stdout.splitlines()]
    assert ["workflow", "bakery", "bakery"] in rows
    assert ["attempts", "1", "2"] in rows
    row = next(ln for ln in diff.stdout.splitlines() if ln.strip().startswith("crumb_loss"))
    _, final_a, final_b, lo_a, hi_a, lo_b, hi_b = row.split()
    assert final_a == final_b and lo_a == lo_b == f"{final_a}@5"  # the same last loaf
    # Step 3 is the worst loaf of both; the burn adds 1.0 to it in the resumed run.
    assert hi_a.endswith("@3") and hi_b.endswith("@3")
    assert float(hi_b[:-2]) == pytest.approx(float(hi_a[:-2]) + 1.0, abs=1e-3)

    page = tmp_path / "uneven.html"
    report = kitchen("report", "uneven", "--out", str(page))
    assert report.code == 0, report.stderr
    html = page.read_text()
    assert html.count('class="attempt"') == 2
    assert html.count('class="mismatch"') == 1 and "1 determinism warning(s)" in html
    assert '<svg class="chart" data-metric="crumb_loss"' in html
    assert "verified: " in html

    out = tmp_path / "uneven.jsonl"
    export = kitchen("export", "uneven", "--out", str(out))
    assert export.code == 0, export.stderr
    head = export.stdout.strip()
    replay = json.loads(kitchen("replay", "uneven", "--json").stdout)
    assert head == replay["events"][-1]["hash"]  # the head from the live database agrees
    verify = kitchen("verify", str(out), "--head", head)
    assert verify.code == 0 and "matches --head" in verify.stdout
