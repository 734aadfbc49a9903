"""`kitchen run dpo_basic` end to end through the real CLI: bad pairs refused before the run
exists, and DPO started from an sl_basic run (the usual pipeline) with its parent on show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import Kitchen, one_line_error
from kitchen.testing.dpo import effective_references, small_dpo_config, write_pairs
from kitchen.testing.runs import SMALL_SL_CONFIG, replay_json

GOOD = {
    "prompt": [{"role": "user", "content": "What is 1 + 1?"}],
    "chosen": [{"role": "assistant", "content": "2"}],
    "rejected": [{"role": "assistant", "content": "3"}],
}


def _rows_with(bad: dict[str, Any]) -> list[dict[str, Any]]:
    return [GOOD, GOOD, bad, GOOD]


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({k: v for k, v in GOOD.items() if k != "chosen"}, "row 2"),
        ({**GOOD, "chosen": [{"role": "assistant", "content": ""}]}, "row 2: 'chosen' must end"),
        ({**GOOD, "prompt": "What is 1 + 1?"}, "row 2"),
    ],
    ids=["missing-chosen", "empty-completion", "prompt-not-messages"],
)
def test_bad_pair_rows_are_refused_before_the_run_exists(
    kitchen: Kitchen, home: Path, tmp_path: Path, bad: dict[str, Any], needle: str
) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows_with(bad)))
    r = kitchen("run", "dpo_basic", f"dataset={data}", "--run-id", "bad")
    assert r.code == 2, r
    line = one_line_error(r)
    assert str(data) in line and needle in line, line
    assert not (home / "bad").exists()
    assert kitchen("show", "bad").code == 2


@pytest.mark.slow
def test_dpo_after_sl_basic(kitchen: Kitchen, home: Path, tmp_path: Path) -> None:
    parent = kitchen("run", "sl_basic", *SMALL_SL_CONFIG, "max_steps=4", "--run-id", "sft")
    assert parent.code == 0, parent.stderr[-800:]
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    r = kitchen(
        "run",
        "dpo_basic",
        *small_dpo_config(pairs),
        "load_checkpoint_path=run:sft",
        "--run-id",
        "dpo",
    )
    assert r.code == 0, r.stderr[-800:]
    assert r.stdout.splitlines()[0] == "dpo"
    shown = kitchen("show", "dpo")
    assert shown.code == 0
    assert "lineage:" in shown.stdout and "run:sft" in shown.stdout, shown.stdout
    doc = replay_json(kitchen, "dpo")
    assert len(effective_references(doc)) == 1
    session = next(
        e
        for e in doc["events"]
        if e["type"] == "StageCompleted" and e["payload"]["stage"] == "init_session"
    )
    assert session["payload"]["outputs"]["parent"] == "run:sft"
    start = doc["state"]["eval_metrics"]["0"]
    # The reference is the parent, so at step 0 every implicit reward is 0.
    assert start["test/margin"] == 0.0 and start["test/accuracy"] == 0.0


def test_a_prompt_that_is_text_in_every_row_is_refused_by_row(
    kitchen: Kitchen, home: Path, tmp_path: Path
) -> None:
    data = tmp_path / "pairs.jsonl"
    rows = [{**GOOD, "prompt": "What is 1 + 1?"}] * 3
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = kitchen("run", "dpo_basic", f"dataset={data}", "--run-id", "bad")
    assert r.code == 2, r
    line = one_line_error(r)
    assert f"{data}: row 0: 'prompt' must be a list" in line, line
    assert not (home / "bad").exists()
