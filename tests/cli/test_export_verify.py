"""``kitchen export`` and ``kitchen verify``: an auditor checks a run's history with no database.

The histories are the hand-written ones of conftest.py; tampering is done to the exported
bytes exactly as an attacker with the file would do it.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from kitchen.engine.audit import verify_export
from kitchen.store import EventStore, open_store
from kitchen.store.canonical import canonical_json, chain_hash
from kitchen.store.schema import events
from kitchen.testing.cli import Kitchen

from .conftest import KITCHEN, completed_run


def _export(kitchen: Kitchen, run_id: str, out: Path) -> str:
    r = kitchen("export", run_id, "--out", str(out))
    assert r.code == 0, r.stderr
    return r.stdout.strip()


def test_export_holds_every_event_and_the_blob_hashes(
    kitchen: Kitchen, runs_db: None, tmp_path: Path
) -> None:
    out = tmp_path / "done.jsonl"
    head = _export(kitchen, "done", out)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["event"] * 11 + ["summary"]
    assert [x["seq"] for x in lines[:-1]] == list(range(1, 12))
    assert lines[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(lines[:-1]))
    assert lines[-1]["head"] == head == lines[-2]["hash"]
    assert len(head) == 64
    summary = lines[-1]
    assert summary["events"] == 11
    assert [(c["name"], c["seq"], c["status"]) for c in summary["checkpoints"]] == [
        ("step-000001", 6, "live")
    ]
    assert [(a["kind"], a["seq"], a["uri"]) for a in summary["artifacts"]] == [
        ("final_weights", 9, "done/final")
    ]
    assert summary["checkpoints"][0]["sha256"] == lines[5]["payload"]["sha256"]


def test_verify_passes_with_no_database(kitchen: Kitchen, runs_db: None, tmp_path: Path) -> None:
    out = tmp_path / "again.jsonl"
    head = _export(kitchen, "again", out)
    # A database URL that cannot be opened: verify must never try.
    r = kitchen("verify", str(out), "--head", head)
    assert r.code == 0, r.stderr
    assert r.stdout.startswith(f"verified: run again, 14 events, head {head}, matches --head")
    r = kitchen("verify", str(out))
    assert r.code == 0 and "no --head" in r.stdout


def _tamper_byte(data: bytes, seq: int, offset: int, new: bytes = b"X") -> bytes:
    """Change one byte inside line ``seq`` (1-based) at ``offset`` from its start."""
    lines = data.split(b"\n")
    line = bytearray(lines[seq - 1])
    line[offset] = new[0] if line[offset] != new[0] else ord("Y")
    lines[seq - 1] = bytes(line)
    return b"\n".join(lines)


def test_one_changed_byte_fails_naming_its_seq(
    kitchen: Kitchen, runs_db: None, tmp_path: Path
) -> None:
    out = tmp_path / "done.jsonl"
    _export(kitchen, "done", out)
    data = out.read_bytes()
    # Through the CLI once: a digit of a loss in seq 5's payload.
    line5 = data.split(b"\n")[4]
    at = line5.index(b"2.5") + 2
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(_tamper_byte(data, 5, at, b"4"))  # 2.5 -> 2.4
    r = kitchen("verify", str(bad))
    assert r.code == 1
    assert r.stderr.strip() == (
        f"kitchen: error: {bad}: seq 5: hash does not match its contents (the event was altered)"
    )
    # Every byte of seq 7's line, in process: each change is found, at seq 7 and nowhere else.
    line7 = data.split(b"\n")[6]
    for offset in range(len(line7)):
        result = verify_export(_tamper_byte(data, 7, offset).splitlines())
        assert not result.ok, offset
        assert result.first_bad_seq == 7, (offset, result.reason)


def test_a_recomputed_chain_passes_alone_but_fails_against_head(
    kitchen: Kitchen, runs_db: None, tmp_path: Path
) -> None:
    out = tmp_path / "done.jsonl"
    head = _export(kitchen, "done", out)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    # The forger improves a logged loss (seq 8: 2.0 → 1.0) and recomputes every later hash.
    lines[7]["payload"]["outputs"]["steps"]["1"]["train_mean_nll"] = 1.0
    prev = lines[6]["hash"]
    for e in lines[7:-1]:
        e["prev_hash"] = prev
        e["hash"] = prev = chain_hash(
            e["run_id"],
            e["seq"],
            e["type"],
            e["schema_version"],
            e["recorded_at"],
            canonical_json(e["payload"]),
            prev,
        )
    lines[-1]["head"] = prev
    forged = tmp_path / "forged.jsonl"
    forged.write_text("".join(canonical_json(x) + "\n" for x in lines))

    assert kitchen("verify", str(forged)).code == 0  # a file alone cannot tell
    r = kitchen("verify", str(forged), "--head", head)
    assert r.code == 1
    assert f"{forged}: the last hash (seq 11) is {prev[:12]}…, not the head {head[:12]}…" in (
        r.stderr
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ls: ls[:5] + ls[6:], "seq 6: seq 7 found where seq 6 was expected (a gap)"),
        (lambda ls: ls[:-1], "no summary line after seq 11 (the export is truncated)"),
        (lambda ls: ls[:-2] + ls[-1:], "the summary does not match the 10 events above it"),
        (lambda ls: [*ls[:-1], ls[-1][:-1]], "the line is not valid JSON"),
    ],
    ids=["a line removed", "truncated", "last event removed", "summary cut short"],
)
def test_structural_damage_is_named(
    kitchen: Kitchen, runs_db: None, tmp_path: Path, edit, message: str
) -> None:
    out = tmp_path / "done.jsonl"
    _export(kitchen, "done", out)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(edit(out.read_text().splitlines())) + "\n")
    r = kitchen("verify", str(bad))
    assert r.code == 1
    assert message in r.stderr, r.stderr


def test_summary_hash_edit_is_found(kitchen: Kitchen, runs_db: None, tmp_path: Path) -> None:
    out = tmp_path / "done.jsonl"
    _export(kitchen, "done", out)
    lines = out.read_text().splitlines()
    summary = json.loads(lines[-1])
    sha = summary["checkpoints"][0]["sha256"]
    summary["checkpoints"][0]["sha256"] = ("f" if sha[0] != "f" else "e") + sha[1:]
    lines[-1] = canonical_json(summary)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    r = kitchen("verify", str(bad))
    assert r.code == 1
    assert "the summary's checkpoints differ from those the events record" in r.stderr


def test_unknown_run_and_missing_file(kitchen: Kitchen, runs_db: None, tmp_path: Path) -> None:
    r = kitchen("export", "nope", "--out", str(tmp_path / "x.jsonl"))
    assert r.code == 2 and "no run 'nope'" in r.stderr
    assert not (tmp_path / "x.jsonl").exists()
    r = kitchen("verify", str(tmp_path / "absent.jsonl"))
    assert r.code == 2 and "no file" in r.stderr


def test_a_non_canonical_stored_payload_is_exported_verbatim() -> None:
    """A row whose payload text is not canonical (the store never writes one: it was edited in
    the database and its hash recomputed) is exported as the exact text, so its hash still
    checks and the oddity stays visible instead of being normalised away."""
    from datetime import UTC, datetime

    from kitchen.engine.audit import event_line
    from kitchen.store import StoredEvent

    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    text = '{"reason": "by hand", "step": 0}'  # spaces: not canonical
    digest = chain_hash("r", 1, "RunCancelled", 1, "2026-01-02T03:04:05.678901Z", text, "0" * 64)
    row = StoredEvent(1, "r", 1, "RunCancelled", json.loads(text), text, when, 1, "0" * 64, digest)
    line = event_line(row)
    assert json.loads(line)["payload_json"] == text and '"payload":' not in line
    summary = canonical_json(
        {"kind": "summary", "format": 1, "run_id": "r", "events": 1, "head": digest,
         "checkpoints": [], "artifacts": []}
    )  # fmt: skip
    result = verify_export([line.encode(), summary.encode()], head=digest)
    assert result.ok, result.reason


def test_a_row_altered_in_the_database_is_exported_as_is_and_fails(
    kitchen: Kitchen, runs_db: None, store: EventStore, tmp_path: Path
) -> None:
    """The export never repairs: a row edited in place shows up at its seq, as in replay."""
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(events)
            .where(events.c.run_id == "done", events.c.seq == 8)
            .values(payload=sa.func.replace(events.c.payload, "2.0", "1.0"))
        )
    out = tmp_path / "done.jsonl"
    _export(kitchen, "done", out)
    r = kitchen("verify", str(out))
    assert r.code == 1
    assert f"{out}: seq 8: hash does not match its contents" in r.stderr
    assert "hash chain broken at seq 8" in kitchen("replay", "done", "--verify").stderr


@pytest.mark.postgres
def test_export_from_postgres_verifies_offline(
    postgres_url: str, home: Path, tmp_path: Path
) -> None:
    pg = open_store(postgres_url)
    completed_run(pg, home, "done")
    pg.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITCHEN_", "OTEL_"))}
    out = tmp_path / "done.jsonl"
    export = subprocess.run(
        [KITCHEN, "export", "done", "--out", str(out)],
        capture_output=True, text=True, check=False,
        env={**env, "KITCHEN_HOME": str(home), "KITCHEN_DB_URL": postgres_url},
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    head = export.stdout.strip()
    verify = subprocess.run(
        [KITCHEN, "verify", str(out), "--head", head],
        capture_output=True, text=True, check=False, env=env,  # no database at all
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith(f"verified: run done, 11 events, head {head}")
