"""The runs projection says which run each run was forked from (``kitchen fork``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

Adds one nullable column to ``runs`` and fills it from each run's ``RunCreated`` (its
``fork.run_id``, null for a run that is no fork), as the projection computes it for new
events; the events themselves are not touched.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("parent", sa.String(64), nullable=True))
    conn = op.get_bind()
    events = sa.table("events", sa.column("run_id"), sa.column("type"), sa.column("payload"))
    runs = sa.table("runs", sa.column("run_id"), sa.column("parent"))
    created = sa.select(events.c.run_id, events.c.payload).where(events.c.type == "RunCreated")
    for run_id, payload in conn.execute(created).all():
        fork = json.loads(payload).get("fork")
        if isinstance(fork, dict) and fork.get("run_id"):
            update = runs.update().where(runs.c.run_id == run_id)
            conn.execute(update.values(parent=fork["run_id"]))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("parent")
