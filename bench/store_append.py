"""How fast does the event store append, next to a plain SQLAlchemy insert loop?

Durable appends per second and commit latency (p50, p99), for single events and for
batches of 12 (what the runner commits per training step), on SQLite (a file in a temp
dir) and on Postgres when KITCHEN_TEST_POSTGRES_URL is set. The baseline inserts the same
rows into an equivalent table of the same database through SQLAlchemy Core, one
transaction per append, with the same connection settings; the two alternate within every
repeat so that drift on a shared machine hits both alike. The ratio is the median over repeats
of (store appends/s / the baseline's appends/s in the same repeat).

    python bench/store_append.py [--appends 200] [--repeats 9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from kitchen.store import EventStore, NewEvent, open_store
from kitchen.store._engine import create_engine, parse_url
from kitchen.store.schema import UTCDateTime

BATCH = 12


def _payload(step: int, k: int) -> dict[str, Any]:
    """About the size of a StageCompleted event."""
    return {
        "stage": "forward_backward",
        "step": step,
        "epoch": 0,
        "outputs": {"loss:sum": 1.2345678 + k, "num_tokens": 512},
        "duration_s": 0.0123,
    }


def _baseline_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "bench_events",
        metadata,
        sa.Column(
            "position",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("run_id", "seq"),
    )


@dataclass
class Sample:
    latencies: list[float]
    elapsed: float


def _time(n: int, append: Callable[[int], None]) -> Sample:
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        append(i)
        latencies.append(time.perf_counter() - t0)
    return Sample(latencies, time.perf_counter() - start)


def _store_run(store: EventStore, size: int) -> Callable[[int], None]:
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    seq = [0]

    def append(i: int) -> None:
        batch = [NewEvent("StageCompleted", _payload(i, k)) for k in range(size)]
        seq[0] = store.append(run_id, batch, seq[0])[-1].seq

    return append


def _baseline_run(engine: sa.Engine, table: sa.Table, size: int) -> Callable[[int], None]:
    run_id = f"base-{uuid.uuid4().hex[:8]}"
    insert = table.insert()

    def append(i: int) -> None:
        now = datetime.now(UTC)
        rows = [
            {
                "run_id": run_id,
                "seq": i * size + k + 1,
                "type": "StageCompleted",
                "payload": json.dumps(_payload(i, k)),
                "recorded_at": now,
                "schema_version": 1,
                "prev_hash": "0" * 64,
                "hash": "0" * 64,
            }
            for k in range(size)
        ]
        with engine.begin() as conn:
            conn.execute(insert, rows)

    return append


def bench(url: str, appends: int, repeats: int) -> list[tuple[str, ...]]:
    store = open_store(url)
    engine = create_engine(parse_url(url))  # same connection settings as the store's
    metadata = sa.MetaData()
    table = _baseline_table(metadata)
    metadata.create_all(engine)
    rows: list[tuple[str, ...]] = []
    for size in (1, BATCH):
        got: dict[str, list[Sample]] = {"store": [], "baseline": []}
        for r in range(repeats):
            order = ["store", "baseline"] if r % 2 == 0 else ["baseline", "store"]
            for name in order:
                fn = (
                    _store_run(store, size)
                    if name == "store"
                    else _baseline_run(engine, table, size)
                )
                got[name].append(_time(appends, fn))
        rate = {name: _rate(samples) for name, samples in got.items()}
        # the ratio pairs each repeat's store run with the baseline run beside it
        paired = statistics.median(
            (len(s.latencies) / s.elapsed) / (len(b.latencies) / b.elapsed)
            for s, b in zip(got["store"], got["baseline"], strict=True)
        )
        for name, samples in got.items():
            lat = sorted(x for s in samples for x in s.latencies)
            rows.append(
                (
                    store.dialect,
                    f"{size} event" + ("s" if size > 1 else ""),
                    name,
                    f"{rate[name]:,.0f}",
                    f"{rate[name] * size:,.0f}",
                    f"{_pct(lat, 50):.2f}",
                    f"{_pct(lat, 99):.2f}",
                    f"{paired if name == 'store' else 1.0:.2f}",
                )
            )
    metadata.drop_all(engine)
    engine.dispose()
    store.close()
    return rows


def _rate(samples: list[Sample]) -> float:
    """Median over repeats of appends per second."""
    return statistics.median(len(s.latencies) / s.elapsed for s in samples)


def _pct(sorted_seconds: list[float], p: int) -> float:
    index = min(len(sorted_seconds) - 1, round(p / 100 * (len(sorted_seconds) - 1)))
    return sorted_seconds[index] * 1000


def _postgres_schema(admin_url: str) -> tuple[str, Callable[[], None]]:
    """A throwaway schema in the given database (commits stay fully synchronous there)."""
    url = parse_url(admin_url)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()

    scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=200, help="appends per repeat")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args()
    header = ("db", "append", "impl", "appends/s", "events/s", "p50 ms", "p99 ms", "ratio")
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += bench(f"sqlite:///{tmp}/bench.db", args.appends, args.repeats)
    if os.environ.get("KITCHEN_TEST_POSTGRES_URL"):
        url, drop = _postgres_schema(os.environ["KITCHEN_TEST_POSTGRES_URL"])
        try:
            rows += bench(url, args.appends, args.repeats)
        finally:
            drop()
    if args.json:
        # {"sqlite 12 events": {"store appends/s": …, "ratio": …}, …} for bench/ab.py
        print(
            json.dumps(
                {
                    f"{r[0]} {r[1]}": {
                        "store appends/s": float(r[3].replace(",", "")),
                        "ratio": float(r[7]),
                    }
                    for r in rows
                    if r[2] == "store"
                }
            )
        )
        return
    _print(header, rows)


def _print(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(
            " | ".join(
                c.rjust(w) if c[:1].isdigit() else c.ljust(w)
                for c, w in zip(row, widths, strict=True)
            )
        )


if __name__ == "__main__":
    main()
