"""`kitchen replay` on a long run: the tail by default, --all, --tail, --at from the nearest
snapshot, --verify against the snapshots, and the pager on a terminal. Through the real CLI."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from kitchen.engine import snapshots
from kitchen.engine.state import fold
from kitchen.store import EventStore
from kitchen.testing.cli import Kitchen, one_line_error

from .conftest import KITCHEN, add, attempt, completed, created, losses

TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"
STEPS = 100
LAST = 2 + 2 * STEPS  # RunCreated, AttemptStarted, then two events a step: 202


def _long_run(store: EventStore, snapshot_at: tuple[int, ...] = (100, 180)) -> None:
    """``long``: seq 1 RunCreated, 2 AttemptStarted, then for step s: seq 3 + 2s its
    optim_step, seq 4 + 2s its loss (s + 0.5). The worker died (no lease): crashed."""
    add(store, "long", created("long"), attempt(1, 4242))
    for step in range(STEPS):
        add(store, "long", completed("optim_step", step), losses(step, step + 0.5))
    records = snapshots.recorded(store.read("long"))
    for seq in snapshot_at:
        snapshots.save(store, fold("long", records[:seq]))


def _seqs(stdout: str) -> list[int]:
    timeline = stdout.split("\n\n")[0]
    return [int(m[1]) for m in re.finditer(rf"^\s*(\d+)  {TIME}  ", timeline, re.M)]


def _state(stdout: str) -> list[str]:
    return stdout[stdout.index("state at seq") :].splitlines()


def test_the_tail_by_default(kitchen: Kitchen, store: EventStore) -> None:
    _long_run(store)
    r = kitchen("replay", "long")
    assert (r.code, r.stderr) == (0, "")
    lines = r.stdout.splitlines()
    assert lines[0] == "... 162 earlier events (seq 1 to 162) not shown; --all shows every event"
    assert lines[1].split() == ["SEQ", "TIME", "(UTC)", "TYPE", "STAGE", "STEP", "DETAILS"]
    assert _seqs(r.stdout) == list(range(163, 203))
    last = next(ln for ln in lines if re.match(rf"\s*202  {TIME}", ln))
    assert " ".join(last.split()[3:]) == (
        "StageCompleted log_step_metrics 99 step 99: train_mean_nll=99.5000 (0.250s)"
    )
    state = _state(r.stdout)
    assert state[0] == "state at seq 202 (the end):"
    assert "    last step (99)  train_mean_nll=99.5000" in state


def test_all_and_tail(kitchen: Kitchen, store: EventStore) -> None:
    _long_run(store)
    every = kitchen("replay", "long", "--all")
    assert every.code == 0
    assert every.stdout.splitlines()[0].split()[0] == "SEQ"
    assert _seqs(every.stdout) == list(range(1, 203))
    three = kitchen("replay", "long", "--tail", "3")
    assert three.stdout.splitlines()[0] == (
        "... 199 earlier events (seq 1 to 199) not shown; --all shows every event"
    )
    assert _seqs(three.stdout) == [200, 201, 202]
    # more than the run holds: every event, no note
    assert _seqs(kitchen("replay", "long", "--tail", "500").stdout) == list(range(1, 203))
    none = kitchen("replay", "long", "--tail", "0")
    assert _seqs(none.stdout) == [] and "state at seq 202 (the end):" in none.stdout


def test_at_folds_from_the_nearest_snapshot(kitchen: Kitchen, store: EventStore) -> None:
    _long_run(store)
    r = kitchen("replay", "long", "--at", "150")
    assert r.code == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("... 110 earlier events (seq 1 to 110) not shown")
    assert _seqs(r.stdout) == list(range(111, 151))
    state = _state(r.stdout)
    assert state[0] == "state at seq 150:"
    assert "  status     running" in state  # what the log said then
    assert "    last step (73)  train_mean_nll=73.5000" in state
    out = json.loads(kitchen("replay", "long", "--at", "150", "--json").stdout)
    assert [e["seq"] for e in out["events"]] == list(range(1, 151))  # --json: every event
    s = out["state"]
    assert (s["last_seq"], s["step"], s["optim_steps"][-1]) == (150, 73, 73)
    assert s["step_metrics"]["73"] == {"train_mean_nll": 73.5}
    assert "74" not in s["step_metrics"]
    tail = json.loads(kitchen("replay", "long", "--json", "--tail", "2").stdout)
    assert [e["seq"] for e in tail["events"]] == [201, 202]
    assert tail["state"]["last_seq"] == 202


def test_the_state_comes_from_the_snapshot_not_from_the_events_before_it(
    kitchen: Kitchen, store: EventStore
) -> None:
    """Seq 3 is made unreadable: whatever folds from seq 1 fails, what starts from a snapshot
    after it does not. ``--verify`` trusts no snapshot and finds the damage."""
    _long_run(store)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET type = 'RunExploded' WHERE seq = 3"))
    assert kitchen("replay", "long").code == 0  # snapshot at 180 + 22 events
    assert kitchen("replay", "long", "--at", "120").code == 0  # snapshot at 100 + 20 events
    for args in (("--all",), ("--at", "60")):
        r = kitchen("replay", "long", *args)
        assert r.code == 1
        assert "unknown event type 'RunExploded'" in one_line_error(r)
    r = kitchen("replay", "long", "--verify")
    assert r.code == 1
    assert "hash chain broken at seq 3" in one_line_error(r)


def test_verify_compares_the_snapshots_with_the_fold(kitchen: Kitchen, store: EventStore) -> None:
    _long_run(store)
    r = kitchen("replay", "long", "--verify")
    assert (r.code, r.stderr) == (0, "")
    assert r.stdout.splitlines()[-1] == "verified: 202 events, 0 checkpoints, 2 snapshots"
    out = json.loads(kitchen("replay", "long", "--verify", "--json").stdout)
    assert out["verified"] == {
        "events": 202,
        "checkpoints": 0,
        "final_adapter": False,
        "snapshots": 2,
    }
    # A snapshot sealed properly but holding another state (a bug, or a forgery): replay
    # believes it, the audit does not.
    records = snapshots.recorded(store.read("long"))
    wrong = fold("long", records[:180])
    forged = snapshots.encode(wrong).replace('"status":"running"', '"status":"cancelled"')
    assert forged != snapshots.encode(wrong)
    store.write_snapshot("long", 180, snapshots.fold_version(), forged)
    assert "  status     cancelled" in _state(kitchen("replay", "long").stdout)
    bad = kitchen("replay", "long", "--verify")
    assert bad.code == 1
    assert one_line_error(bad) == (
        "kitchen: error: the snapshot of run long at seq 180 differs from the fold of its "
        "events; remove the run's snapshots with `kitchen db drop-snapshots long`"
    )
    dropped = kitchen("db", "drop-snapshots", "long")
    assert (dropped.code, dropped.stdout) == (0, "2\n")
    assert "  status     crashed (the log says running)" in _state(kitchen("replay", "long").stdout)
    assert kitchen("replay", "long", "--verify").stdout.splitlines()[-1] == (
        "verified: 202 events, 0 checkpoints"
    )


def test_bad_tail_is_one_line_exit_2(kitchen: Kitchen, store: EventStore) -> None:
    _long_run(store, ())
    r = kitchen("replay", "long", "--tail", "-1")
    assert r.code == 2
    assert one_line_error(r) == (
        "kitchen: error: --tail -1 is negative; give the number of events to show (>= 0)"
    )
    both = kitchen("replay", "long", "--all", "--tail", "3")
    assert both.code == 2 and "not allowed with argument" in both.stderr


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``kitchen ARGS`` with stdout on a pseudo-terminal; its exit code and what the
    terminal received."""
    master, slave = pty.openpty()
    chunks: list[bytes] = []
    with subprocess.Popen(
        [KITCHEN, *args], stdout=slave, stderr=subprocess.DEVNULL, env=env
    ) as proc:
        os.close(slave)
        while True:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        proc.wait(timeout=60)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode().replace("\r\n", "\n")


def test_on_a_terminal_the_output_goes_through_a_pager(
    store: EventStore, home: Path, sqlite_url: str, tmp_path: Path
) -> None:
    _long_run(store)
    paged = tmp_path / "paged.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITCHEN_", "PAGER"))}
    env |= {"KITCHEN_HOME": str(home), "KITCHEN_DB_URL": sqlite_url}
    env["PAGER"] = f"sh -c 'cat > {paged}'"
    code, shown = _on_a_terminal(["replay", "long"], env)
    assert (code, shown) == (0, "")
    text = paged.read_text()
    assert text.startswith("... 162 earlier events") and "state at seq 202 (the end):" in text
    paged.unlink()
    code, shown = _on_a_terminal(["replay", "long", "--tail", "1", "--no-pager"], env)
    assert code == 0 and not paged.exists()
    assert shown.startswith("... 201 earlier events") and "state at seq 202" in shown
    # KITCHEN_PAGER wins over PAGER; a pager that cannot start: printed directly
    code, shown = _on_a_terminal(
        ["replay", "long", "--tail", "1"], env | {"KITCHEN_PAGER": "no-such-pager-here"}
    )
    assert code == 0 and not paged.exists() and "state at seq 202" in shown


@pytest.mark.parametrize("pager", ["", "cat"])
def test_an_empty_or_cat_pager_prints_directly(
    store: EventStore, home: Path, sqlite_url: str, pager: str
) -> None:
    _long_run(store, ())
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCHEN_")}
    env |= {"KITCHEN_HOME": str(home), "KITCHEN_DB_URL": sqlite_url, "PAGER": pager}
    code, shown = _on_a_terminal(["replay", "long", "--tail", "1"], env)
    assert code == 0 and "state at seq 202" in shown
