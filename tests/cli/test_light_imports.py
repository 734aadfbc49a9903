"""The audit commands never load a model library, nor the runner or OpenTelemetry (no spans).

Each command runs in its own interpreter under ``-X importtime``, which lists on stderr every
module that process imported.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kitchen.testing.cli import Kitchen

HEAVY = ("torch", "transformers", "peft", "datasets", "mlflow", "wandb", "tensorboard")
# Replay and the commands that look at runs (diff, plot, report, export, verify) have no side
# effects on the run: they must not even load what opens spans or drives stages.
ENGINE = ("kitchen.engine.runner", "kitchen.engine.telemetry", "opentelemetry")


def _imported(stderr: str) -> set[str]:
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name)
    return names


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("runs",),
        ("runs", "--json"),
        ("show", "again"),
        ("replay", "done", "--verify"),
        ("replay", "again", "--at", "8", "--json"),
        ("cancel", "gone"),
        ("diff", "done", "again"),
        ("plot", "again"),
        ("report", "again", "--out", "again.html"),
        ("export", "done", "--out", "done.jsonl"),
        ("verify", "done.jsonl"),
    ],
    ids=" ".join,
)
def test_no_model_library_is_imported(
    kitchen: Kitchen,
    runs_db: None,
    args: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # report/export write, verify reads, relative to here
    if args[0] == "verify":
        assert kitchen("export", "done", "--out", "done.jsonl").code == 0
    r = kitchen(*args, python_flags=("-X", "importtime"))
    assert r.code == 0, r.stderr[-2000:]
    names = _imported(r.stderr)
    assert "kitchen.cli" in names  # the probe works: the command's own imports are listed
    top_level = {n.split(".")[0] for n in names}
    assert not top_level & set(HEAVY), sorted(top_level & set(HEAVY))
    if args[0] in ("replay", "diff", "plot", "report", "export", "verify"):
        leaked = {n for n in names if n.startswith(ENGINE)}
        assert not leaked, sorted(leaked)
    if args[0] in ("plot", "report"):
        # A text plot and an SVG report are drawn by hand: no plotting library is loaded.
        assert "matplotlib" not in top_level
    if args[0] in ("--help", "runs"):
        # Start-up: listing runs reads the projection only and never decodes an event.
        assert "pydantic" not in top_level
