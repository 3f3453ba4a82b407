"""Alembic environment: runs on the connection that ``qalqan.store.migrate`` hands over."""

from __future__ import annotations

from alembic import context

from qalqan.store.tables import UNMANAGED_TABLES, metadata


def _managed(name: str | None, kind: str, _parent: object) -> bool:
    """The full-text index is created by hand (see migration 0005): autogenerate leaves it be."""
    return not (kind == "table" and name in UNMANAGED_TABLES)


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    include_name=_managed,
)
with context.begin_transaction():
    context.run_migrations()
