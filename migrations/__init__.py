"""Alembic revisions for kitchen's database, shipped inside the package.

Run through :func:`kitchen.store.upgrade` or ``kitchen db upgrade``; no ``alembic.ini`` is
needed, so a plain ``pip install`` can create and upgrade databases from any directory.
"""
