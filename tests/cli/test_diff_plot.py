"""``kitchen diff`` and ``kitchen plot`` on hand-written histories (conftest.py), expected values
written out by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kitchen.engine import events as ev
from kitchen.store import EventStore, NewEvent
from kitchen.testing.cli import Kitchen

from .conftest import attempt, completed, losses


@pytest.fixture
def child(runs_db: None, store: EventStore, add_events: Callable[..., None]) -> None:
    """``child``: started from ``done``'s final adapter, another learning rate and python, one
    logged step and a held-out evaluation. RunCreated is stored as v2 (with its lineage)."""
    created = ev.RunCreated(
        recipe="dpo_basic",
        workflow="preference",
        config={"learning_rate": 0.001, "max_steps": 2, "dataset": "arith-chat", "beta": 0.1},
        config_hash="beef",
        seed=7,
        versions={"python": "3.12.1"},
        data_fingerprint="da7a",
        run_dir="child",
        lineage=[
            ev.LineageRef(
                role="parent",
                source="run:done",
                kind="run",
                run_id="done",
                what="final",
                sha256="ab" * 32,
                bytes=11,
            )
        ],
    )
    store.append("child", [NewEvent("RunCreated", created.payload(), 2)], expected_seq=0)
    add_events(
        "child",
        attempt(1, 4444),
        losses(0, 1.5),
        completed("evaluate", 1, metrics={"test/nll": 1.25}),
    )


def test_diff_names_what_differs(kitchen: Kitchen, child: None) -> None:
    r = kitchen("diff", "done", "child")
    assert r.code == 0, r.stderr
    out = r.stdout
    assert "workflow          supervised  preference" in out
    assert "config hash       c0ffee      beef" in out
    config = out.split("config:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split() for line in config] == [
        ["key", "done", "child"],
        ["beta", "(absent)", "0.1000", "*"],
        ["learning_rate", "0.0001", "0.0010", "*"],
    ]
    assert "  python  3.11.9  3.12.1  *" in out
    assert f"parent  (absent)  done final sha256 {'ab' * 6}  *" in out
    metrics = out.split("value@step):\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split() for line in metrics[1:]] == [
        ["train_mean_nll", "2.0000", "1.5000", "2@1", "2.5@0", "1.5@0", "1.5@0"],
        ["test/nll", "(held-out)", "1.7500", "1.2500", "1.75@2", "1.75@2", "1.25@1", "1.25@1"],
        ["test/accuracy", "(held-out)", "0.5000", "-", "0.5@2", "0.5@2", "-", "-"],
        ["test/examples", "(held-out)", "8.0000", "-", "8@2", "8@2", "-", "-"],
    ]
    assert "checkpoints:\n  done" in out and "step-000001 (live, sha256" in out


def test_diff_of_a_run_with_itself_and_an_unknown_run(kitchen: Kitchen, runs_db: None) -> None:
    r = kitchen("diff", "again", "again")
    assert r.code == 0
    assert "config: same config" in r.stdout and "versions: same versions" in r.stdout
    r = kitchen("diff", "done", "nope")
    assert r.code == 2 and r.stderr.startswith("kitchen: error: no run 'nope'")


def test_text_plot_of_a_resumed_run(kitchen: Kitchen, runs_db: None) -> None:
    """``again``: effective steps 0 (3.0) and 1 (2.5); step 1's superseded 2.75 dimmed."""
    r = kitchen("plot", "again")
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "train_mean_nll"
    grid = lines[1:13]
    assert grid[0] == "    3 |*"
    assert grid[11] == "  2.5 |" + " " * 63 + "*"
    assert grid[6] == "      |" + " " * 63 + "."  # 2.75 sits half-way: row 5.5 rounds to 6
    assert lines[-1] == "  * again train_mean_nll: 2 points, 1 superseded (.)"
    hidden = kitchen("plot", "again", "--no-superseded").stdout
    assert "." not in hidden.split("\n", 13)[-1].split("+")[0] and "superseded" not in hidden


def test_text_plot_of_two_runs_and_a_chosen_metric(kitchen: Kitchen, runs_db: None) -> None:
    r = kitchen("plot", "done", "again", "--metric", "train_mean_nll")
    assert r.code == 0, r.stderr
    assert r.stdout.count("train_mean_nll") == 3  # the title and one legend line per run
    assert "  * done train_mean_nll: 2 points" in r.stdout
    assert "  o again train_mean_nll: 2 points, 1 superseded (.)" in r.stdout
    r = kitchen("plot", "done", "--metric", "reward")
    assert r.code == 2
    assert r.stderr.strip() == (
        "kitchen: error: no metric 'reward' in these runs; known: train_mean_nll, "
        "test/nll, test/accuracy, test/examples"
    )


def test_png_plot(kitchen: Kitchen, runs_db: None, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="kitchen plot --out needs the plot extra")
    out = tmp_path / "curves.png"
    r = kitchen("plot", "done", "again", "--out", str(out))
    assert r.code == 0, r.stderr
    assert r.stdout.strip() == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    height, width = imread(out).shape[:2]
    assert (width, height) == (500, 340)  # only train_mean_nll varies (test/* are constant)
    assert kitchen("plot", "done", "--out", str(tmp_path / "x.svg")).code == 2
