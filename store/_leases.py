"""Leases and cancel requests: operational rows beside the log, not history.

A lease is taken inside a write transaction that first inserts-if-absent and then locks the
row, so two workers racing for one run serialise on that row and exactly one wins.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from kitchen.errors import LeaseHeld
from kitchen.log_records import Lease

from . import _dialects
from .schema import cancel_requests, leases


def _insert_if_absent(conn: sa.Connection, table: sa.Table, values: dict[str, object]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True if this call inserted the row."""
    return _dialects.of(conn).insert_if_absent(conn, table, dict(values))


def to_lease(row: sa.Row[tuple[object, ...]] | None) -> Lease | None:
    return None if row is None else Lease(**row._mapping)


def get(conn: sa.Connection, run_id: str, *, for_update: bool = False) -> Lease | None:
    query = sa.select(leases).where(leases.c.run_id == run_id)
    if for_update:
        query = query.with_for_update()
    return to_lease(conn.execute(query).first())


def acquire(conn: sa.Connection, new: Lease) -> Lease:
    """Take the lease, renew our own, or take over an expired or orphaned one."""
    if _insert_if_absent(conn, leases, _values(new)):
        return new
    current = get(conn, new.run_id, for_update=True)
    if current is not None and current.holder != new.holder and current.is_live(new.acquired_at):
        raise held_error(current)
    conn.execute(leases.update().where(leases.c.run_id == new.run_id).values(**_values(new)))
    return new


def held_error(lease: Lease) -> LeaseHeld:
    return LeaseHeld(
        f"run {lease.run_id} is held by pid {lease.pid} on {lease.host} until "
        f"{lease.expires_at.isoformat(timespec='seconds')}; wait for it to finish, or stop that "
        "worker and try again"
    )


def renew(conn: sa.Connection, run_id: str, holder: str, ttl_s: float) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
    done = conn.execute(
        leases.update()
        .where(leases.c.run_id == run_id, leases.c.holder == holder)
        .values(expires_at=expires)
    ).rowcount
    if not done:
        current = get(conn, run_id)
        if current is not None:
            raise held_error(current)
        raise LeaseHeld(
            f"run {run_id} lost its lease (it expired and was released); "
            f"resume it with `kitchen resume {run_id}`"
        )


def release(conn: sa.Connection, run_id: str, holder: str) -> None:
    conn.execute(leases.delete().where(leases.c.run_id == run_id, leases.c.holder == holder))


def request_cancel(conn: sa.Connection, run_id: str) -> None:
    _insert_if_absent(conn, cancel_requests, {"run_id": run_id, "requested_at": datetime.now(UTC)})


def cancel_requested(conn: sa.Connection, run_id: str) -> bool:
    query = sa.select(cancel_requests.c.run_id).where(cancel_requests.c.run_id == run_id)
    return conn.execute(query).first() is not None


def clear_cancel(conn: sa.Connection, run_id: str) -> None:
    conn.execute(cancel_requests.delete().where(cancel_requests.c.run_id == run_id))


def _values(lease: Lease) -> dict[str, object]:
    return {
        "run_id": lease.run_id,
        "holder": lease.holder,
        "host": lease.host,
        "pid": lease.pid,
        "attempt": lease.attempt,
        "acquired_at": lease.acquired_at,
        "expires_at": lease.expires_at,
    }
