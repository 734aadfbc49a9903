"""A real full disk and a real read-only disk under ``kitchen run``, at each write site in turn.

The run folders (KITCHEN_HOME) live on a small tmpfs. The run stops itself between two writes
(``KITCHEN_FAULT=POINT=SIGSTOP``); the test fills the tmpfs so that exactly the chosen write
finds no room (or remounts it read-only), and lets the run go on. The write fails the way it
really fails — safetensors' own error, Python's ``OSError``, SQLite's "database or disk is
full" — and the run must end its attempt resumable: exit 75, one line naming the path and the
fault, no ``RunFailed``, no checkpoint on record that is not whole. Then the filesystem is
enlarged (``mount -o remount,size=``) or made writable again, and ``kitchen resume`` must end
with the very bytes of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kitchen.testing.cli import Kitchen, Result, make_kitchen
from kitchen.testing.runs import adapter_sha, replay_json
from tests.disk.realfs import PAGE, Tmpfs, carry_on, kitchen_env, stopped_at

pytestmark = pytest.mark.slow
MakeFs = Callable[..., Tmpfs]

CONFIG = [
    "max_steps=4",
    "save_every=2",
    "batch_size=8",
    "max_length=64",
    "eval_examples=4",
    "eval_max_tokens=4",
]
"""Checkpoints at steps 2 and 4: a fault at the second resumes from the first."""
RUN = "disk"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run of CONFIG; its folder (final adapter, checkpoints) is compared."""
    home = tmp_path_factory.mktemp("reference")
    r = make_kitchen(home)("run", "sl_basic", *CONFIG, "--run-id", RUN)
    assert r.code == 0, r.stderr[-2000:]
    return home


def _pages(path: Path) -> int:
    return -(-path.stat().st_size // PAGE) * PAGE


def fault_line(r: Result, kind: str, recorded: bool = True) -> str:
    """Exit 75 and exactly one line naming the fault; no traceback, no failure."""
    assert r.code == 75, (r.code, r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr
    assert "error:" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "fault (" in ln]
    assert len(lines) == 1, r.stderr
    shown = kind if recorded else f"{kind}, not on record"
    assert lines[0].startswith(f"  fault ({shown}): cannot write "), lines[0]
    return lines[0]


def _events(kitchen: Kitchen) -> list[dict[str, Any]]:
    return list(replay_json(kitchen, RUN)["events"])


def _checkpoint_steps(events: list[dict[str, Any]]) -> list[int]:
    return [int(e["payload"]["step"]) for e in events if e["type"] == "CheckpointSaved"]


def _interrupted(kitchen: Kitchen, kind: str, stage: str) -> dict[str, Any]:
    events = _events(kitchen)
    last = events[-1]
    assert last["type"] == "AttemptInterrupted", last
    assert (last["payload"]["fault"], last["payload"]["stage"]) == (kind, stage)
    assert not [e for e in events if e["type"] in ("RunFailed", "StageFailed")]
    return dict(last["payload"])


def _resumed_identically(kitchen: Kitchen, home: Path, reference: Path, from_step: int) -> None:
    r = kitchen("resume", RUN)
    assert r.code == 0, r.stderr[-3000:]
    assert adapter_sha(home, RUN) == adapter_sha(reference, RUN)
    events = _events(kitchen)
    resumed = [e["payload"]["from_step"] for e in events if e["type"] == "RunResumed"]
    assert resumed == [from_step]
    assert sorted(set(_checkpoint_steps(events))) == [2, 4]
    for name in ("step-000002", "step-000004"):
        assert _tree_sha(home / RUN / "checkpoints" / name) == _tree_sha(
            reference / RUN / "checkpoints" / name
        )
    for line in (home / RUN / "metrics.jsonl").read_text().splitlines():
        json.loads(line)  # never a torn line
    assert not list(home.rglob(".*kitchen-tmp*"))  # no temp folder left behind


def _tree_sha(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


# (id, where the run stops, bytes left free then, the stage it ends in, the resume's step)
SITES = [
    ("checkpoint-weights", "stage:save_checkpoint:before@2", lambda ref: 0, "save_checkpoint", 2),
    (
        "optimizer-state",
        "stage:save_checkpoint:before@2",
        # room for weights.safetensors exactly: optimizer.safetensors, next, finds none
        lambda ref: _pages(ref / RUN / "checkpoints/step-000004/state/weights.safetensors"),
        "save_checkpoint",
        2,
    ),
    (
        "blob-marker",
        "checkpoint:mid_write@2",
        # room for cursor.json: the blob store's own marker file, written last, finds none
        lambda ref: PAGE,
        "save_checkpoint",
        2,
    ),
    ("metrics", "stage:log_step_metrics:before@1", lambda ref: 0, "log_step_metrics", 0),
]


@pytest.mark.parametrize(
    ("point", "leave", "stage", "from_step"),
    [s[1:] for s in SITES],
    ids=[s[0] for s in SITES],
)
def test_a_full_disk_at_each_write_site(
    tmp_path: Path,
    tmpfs: MakeFs,
    reference: Path,
    point: str,
    leave: Callable[[Path], int],
    stage: str,
    from_step: int,
) -> None:
    fs = tmpfs("home", "16m")
    home = fs.path
    db = tmp_path / "db" / "kitchen.db"  # the database elsewhere: only the run folders fill up
    env = kitchen_env(home, KITCHEN_DB_URL=f"sqlite:///{db}")
    proc = stopped_at(point, ["run", "sl_basic", *CONFIG, "--run-id", RUN], env)
    fs.fill(leave=leave(reference))
    r = carry_on(proc)
    line = fault_line(r, "disk_full")
    assert "No space left on device; free space and resume" in line
    assert str(home / RUN) in line  # the path
    assert f"continue with: kitchen resume {RUN}" in r.stderr

    kitchen = make_kitchen(home, f"sqlite:///{db}")
    payload = _interrupted(kitchen, "disk_full", stage)
    assert payload["reason"] == line.split(": ", 1)[1]
    events = _events(kitchen)
    assert _checkpoint_steps(events) == ([2] if from_step == 2 else [])  # nothing half-written
    assert not list(home.rglob(".*kitchen-tmp*"))

    fs.resize("64m")
    _resumed_identically(kitchen, home, reference, from_step)


def test_a_full_disk_under_the_sqlite_database(tmpfs: MakeFs, reference: Path) -> None:
    """KITCHEN_HOME and its kitchen.db on one tmpfs, filled just before a commit: SQLite's
    "database or disk is full". Nothing more can be recorded, the AttemptInterrupted included:
    the log ends at the last commit, and a resume carries on from it."""
    fs = tmpfs("home", "16m")
    home = fs.path
    env = kitchen_env(home, KITCHEN_COMMIT_WINDOW_MS="0")
    proc = stopped_at("flush:before@12", ["run", "sl_basic", *CONFIG, "--run-id", RUN], env)
    fs.fill()
    r = carry_on(proc)
    line = fault_line(r, "disk_full", recorded=False)
    assert f"cannot write to database sqlite:///{home / 'kitchen.db'} (append to run {RUN})" in line
    assert "No space left on device" in line

    fs.resize("64m")
    kitchen = make_kitchen(home)
    shown = kitchen("show", RUN)
    assert "crashed (the log says running)" in shown.stdout, shown.stdout
    events = _events(kitchen)
    assert [e["type"] for e in events if e["type"] == "AttemptInterrupted"] == []
    from_step = max(_checkpoint_steps(events), default=0)
    _resumed_identically(kitchen, home, reference, from_step)


def test_a_read_only_disk_mid_run(tmp_path: Path, tmpfs: MakeFs, reference: Path) -> None:
    """The run folders' tmpfs remounted read-only between two stages (the database elsewhere,
    so nothing on it is open for writing), then writable again."""
    fs = tmpfs("home", "16m")
    home = fs.path
    db = tmp_path / "db" / "kitchen.db"
    env = kitchen_env(home, KITCHEN_DB_URL=f"sqlite:///{db}")
    args = ["run", "sl_basic", *CONFIG, "--run-id", RUN]
    proc = stopped_at("stage:save_checkpoint:before@2", args, env)
    fs.read_only()
    r = carry_on(proc)
    line = fault_line(r, "read_only")
    assert line.endswith(
        f"cannot write blob {home / RUN / 'checkpoints/step-000004'}: Read-only file system; "
        "make it writable again and resume"
    ), line

    kitchen = make_kitchen(home, f"sqlite:///{db}")
    _interrupted(kitchen, "read_only", "save_checkpoint")
    assert _checkpoint_steps(_events(kitchen)) == [2]
    r = kitchen("resume", RUN)  # still read-only: refused at once, exit 75, nothing recorded
    assert (r.code, r.stderr) == (
        75,
        f"kitchen: error: cannot write to KITCHEN_HOME={home}: Read-only file system; "
        "make it writable again and try again\n",
    )

    fs.writable()
    _resumed_identically(kitchen, home, reference, 2)


def test_export_and_report_on_a_full_disk(tmpfs: MakeFs, reference: Path) -> None:
    """Commands outside a run: one line, exit 75, and no half-written file left."""
    fs = tmpfs("out", "1m")
    fs.fill()
    kitchen = make_kitchen(reference)
    for args, name in (
        (("export", RUN, "--out", str(fs.path / "x.jsonl")), "x.jsonl"),
        (("report", RUN, "--out", str(fs.path / "x.html")), "x.html"),
    ):
        r = kitchen(*args)
        assert r.code == 75, (r.code, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert lines == [
            f"kitchen: error: cannot write {fs.path / name}: No space left on device; "
            "free space and try again"
        ], r.stderr
    assert sorted(p.name for p in fs.path.iterdir()) == [".filler-1"]
