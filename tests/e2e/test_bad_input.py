"""Bad input: one clear line, a non-zero exit, no traceback, and no run left behind."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from kitchen.testing.cli import Kitchen, one_line_error


def _no_run_behind(home: Path) -> None:
    db = home / "kitchen.db"
    if db.exists():
        with sqlite3.connect(db) as con:
            assert con.execute("select count(*) from events").fetchone()[0] == 0
    if home.exists():
        assert [p.name for p in home.iterdir() if p.is_dir()] == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["run", "no_such_recipe"],
            "unknown recipe 'no_such_recipe'; known recipes: distill_off_policy, "
            "distill_on_policy, dpo_basic, rl_basic, rl_multiturn, sl_basic",
        ),
        (["run", "sl_basic", "lerning_rate=1e-3"], "unknown key 'lerning_rate'"),
        (["run", "sl_basic", "batch_size=abc"], "batch_size: Input should be a valid integer"),
        (["run", "sl_basic", "learning_rate=-1"], "learning_rate: Input should be greater than 0"),
        (["run", "sl_basic", "notkeyvalue"], "'notkeyvalue' is not key=value"),
        (
            ["run", "sl_basic", "--config", "/nonexistent/cfg.yaml"],
            "config file '/nonexistent/cfg.yaml' not found",
        ),
        (["run", "sl_basic", "dataset=/nonexistent/data.jsonl"], "/nonexistent/data.jsonl"),
        (["run", "sl_basic", "renderer_name=nope"], "unknown renderer_name 'nope'"),
        (["run", "sl_basic", "model_name=/nonexistent/model"], "holds no model"),
        (["run", "sl_basic", "--run-id", "bad id!"], "run id 'bad id!' is not allowed"),
        (["run", "distill_on_policy"], "no teacher: set teacher_checkpoint=run:<id>"),
        (
            ["run", "distill_off_policy", "teacher_checkpoint=run:a", "teacher_model=x/y"],
            "set teacher_checkpoint or teacher_model, not both",
        ),
        (["run", "distill_on_policy", "teacher_checkpoint=run:nobody"], "no run 'nobody'"),
        (["show", "no-such-run"], "no-such-run"),
        (["resume", "no-such-run"], "no-such-run"),
    ],
)
def test_bad_input_is_one_line(kitchen: Kitchen, home: Path, args: list[str], needle: str) -> None:
    r = kitchen(*args)
    assert r.code == 2, r
    assert needle in one_line_error(r)
    _no_run_behind(home)


def test_broken_config_file(kitchen: Kitchen, home: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("learning_rate: [1e-3\nbatch_size: 4\n")
    r = kitchen("run", "sl_basic", "--config", str(cfg))
    assert r.code == 2
    assert "is not valid YAML at line" in one_line_error(r)
    toml = tmp_path / "broken.toml"
    toml.write_text("learning_rate = = 1\n")
    r = kitchen("run", "sl_basic", "--config", str(toml))
    assert r.code == 2
    assert "is not valid TOML" in one_line_error(r)
    _no_run_behind(home)


def test_malformed_dataset_rows(kitchen: Kitchen, home: Path, tmp_path: Path) -> None:
    data = tmp_path / "chat.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    data.write_text(json.dumps(good) + "\n" + "{not json\n")
    r = kitchen("run", "sl_basic", f"dataset={data}")
    line = one_line_error(r)
    assert str(data) in line and "2" in line  # names the file and the bad line
    _no_run_behind(home)


def test_unwritable_home(kitchen: Kitchen, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores permissions: make the home a path under a regular file instead.
        blocker = tmp_path / "file"
        blocker.write_text("x")
        target = blocker / "home"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "home"
    r = kitchen("run", "sl_basic", extra_env={"KITCHEN_HOME": str(target)})
    assert r.code == 2
    assert "is not writable" in one_line_error(r)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("postgresql+psycopg://kitchen:s3cret-pw@127.0.0.1:1/nope", "127.0.0.1"),
        ("notadialect://x", "notadialect"),
    ],
)
def test_unreachable_database(kitchen: Kitchen, home: Path, url: str, needle: str) -> None:
    r = kitchen("run", "sl_basic", extra_env={"KITCHEN_DB_URL": url})
    line = one_line_error(r)
    assert needle in line
    assert "s3cret-pw" not in r.stderr + r.stdout


def test_non_database_file(kitchen: Kitchen, home: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    r = kitchen("run", "sl_basic", extra_env={"KITCHEN_DB_URL": f"sqlite:///{junk}"})
    assert "junk.db" in one_line_error(r) or "not a database" in one_line_error(r)
    assert junk.read_bytes() == b"this is not a database" * 100


def test_a_bad_commit_window(kitchen: Kitchen, home: Path) -> None:
    r = kitchen("run", "sl_basic", extra_env={"KITCHEN_COMMIT_WINDOW_MS": "soon"})
    line = one_line_error(r)
    assert "KITCHEN_COMMIT_WINDOW_MS='soon'" in line and "0 commits every step" in line
    _no_run_behind(home)


def test_a_teacher_on_another_tokenizer_is_refused_before_the_run(
    kitchen: Kitchen, home: Path, tmp_path: Path
) -> None:
    """Distillation scores the student's tokens with the teacher: a teacher whose tokenizer
    differs (here: the digits 1 and 2 swap ids) is refused by the workflow's pre-flight."""
    from kitchen.embedded import TINY_MODEL_DIR

    teacher = tmp_path / "other-tokenizer"
    shutil.copytree(TINY_MODEL_DIR, teacher)
    tokenizer = json.loads((teacher / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    vocab["1"], vocab["2"] = vocab["2"], vocab["1"]
    (teacher / "tokenizer.json").write_text(json.dumps(tokenizer))
    r = kitchen("run", "distill_on_policy", f"teacher_model={teacher}", "--run-id", "student")
    assert r.code == 2, r
    assert "tokenizes differently from the student" in one_line_error(r)
    _no_run_behind(home)
    listed = kitchen("runs")
    assert listed.code == 0, listed
    assert "student" not in listed.stdout
