"""What the read-side commands share: load and fold a run, derive its shown status, format.

Only the store, the event records and the fold are used here (never the runner or an
adapter), so ``kitchen runs``/``show``/``replay``/``cancel`` start fast and cannot load a model.
The event records (pydantic) are imported only by the functions that decode, so that
``kitchen runs``, which reads the projection alone, does not pay for them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kitchen.errors import NotFound

if TYPE_CHECKING:
    from kitchen.engine.state import Recorded, RunState
    from kitchen.store import EventStore, StoredEvent


class HasStatus(Protocol):
    """A runs-projection row or a folded state: both say a run's id and its recorded status."""

    @property
    def run_id(self) -> str: ...

    @property
    def status(self) -> str: ...


def kitchen_home() -> Path:
    """KITCHEN_HOME (default ``./kitchen-runs``): run folders and blob URIs are relative to it."""
    from kitchen.paths import kitchen_home as home

    return home()


def open_store() -> EventStore:
    """The store named by KITCHEN_DB_URL / KITCHEN_HOME (imported here to keep --help fast)."""
    from kitchen.store import open_store as _open

    return _open()


def not_found(store: EventStore, run_id: str) -> NotFound:
    return NotFound(f"no run {run_id!r} in {store.url_for_display}; see `kitchen runs`")


def records(rows: Iterable[StoredEvent]) -> list[Recorded]:
    """Decode stored rows (upcasting old schema versions) into what the fold takes."""
    from kitchen.engine import events as ev
    from kitchen.engine.state import Recorded

    return [
        Recorded(r.seq, r.recorded_at, ev.decode(r.type, r.schema_version, r.payload)) for r in rows
    ]


def fold_run(store: EventStore, run_id: str, upto_seq: int | None = None) -> RunState:
    """The run's state (at ``upto_seq`` if given): its newest snapshot that verifies, and the
    events after it folded; NotFound if it has no events."""
    from kitchen.engine import snapshots

    return snapshots.load(store, run_id, upto_seq).state


def load_state(
    store: EventStore, run_id: str, upto_seq: int | None = None
) -> tuple[RunState, list[StoredEvent]]:
    """Fold every event of the run (those with seq <= ``upto_seq`` if given), for commands that
    also need the rows; NotFound if it has none."""
    from kitchen.engine.state import fold

    rows = store.read(run_id, upto_seq=upto_seq)
    if not rows:
        raise not_found(store, run_id)
    return fold(run_id, records(rows)), rows


def has_live_lease(store: EventStore, run_id: str) -> bool:
    lease = store.get_lease(run_id)
    return lease is not None and lease.is_live()


def displayed_status(store: EventStore, run: HasStatus) -> str:
    """The status a user sees: ``running`` with no live lease means its worker died: ``crashed``.

    ``crashed`` is never an event (a dead process cannot record its own death); it is derived
    here, at read time, from the lease table.
    """
    if run.status == "running" and not has_live_lease(store, run.run_id):
        return "crashed"
    return run.status


# --------------------------------------------------------------------------- formatting


def fmt_time(when: datetime | None) -> str:
    """UTC to the second, e.g. ``2024-11-25 01:02:03``; ``-`` when unknown."""
    return "-" if when is None else when.strftime("%Y-%m-%d %H:%M:%S")


def fmt_value(value: Any) -> str:
    """A metric or output value, short: floats to 4 significant decimals, others as text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.4f}"
    return str(value)


def fmt_metrics(metrics: dict[str, Any]) -> str:
    return "  ".join(f"{k}={fmt_value(v)}" for k, v in sorted(metrics.items()))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain left-aligned text table, two spaces between columns, no trailing blanks."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def jsonable(value: Any) -> Any:
    """Dataclasses, tuples and datetimes as plain JSON values (dicts, lists, ISO strings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "model_dump"):  # an event record (a lineage entry)
        return value.model_dump(mode="json")
    return value


def state_json(state: RunState, status: str | None = None) -> dict[str, Any]:
    """RunState as JSON: every field, plus the status a user is shown (``crashed`` derived)."""
    out: dict[str, Any] = jsonable(state)
    out["displayed_status"] = status or state.status
    return out


def write_whole(out: Path, chunks: Iterable[str]) -> None:
    """Write ``chunks`` to ``out`` through a temp file renamed into place, so a failed write
    (a full or read-only disk included) leaves no half-written file; a storage fault is
    raised as one line naming ``out``."""
    import contextlib

    from kitchen.engine.io_faults import storage_fault

    tmp = out.with_name(out.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as fh:
            for chunk in chunks:
                fh.write(chunk)
        tmp.replace(out)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        fault = storage_fault(exc, str(out), then="try again")
        if fault is not None:
            raise fault from exc
        raise
