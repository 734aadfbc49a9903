"""Alembic environment: targets ``kitchen.store.schema.metadata``.

kitchen passes its own open connection in ``config.attributes["connection"]`` so that the
upgrade runs inside the transaction that holds the migration lock. Given only a URL (offline
SQL generation, or alembic's own commands), it connects by itself.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from kitchen.store.schema import metadata

config = context.config


def _configure(**kwargs: object) -> None:
    context.configure(target_metadata=metadata, compare_type=True, **kwargs)  # type: ignore[arg-type]


if context.is_offline_mode():
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    given = config.attributes.get("connection")
    if given is not None:
        _configure(connection=given)
        with context.begin_transaction():
            context.run_migrations()
    else:
        engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.connect() as connection:
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
        engine.dispose()
