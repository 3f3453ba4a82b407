"""The migrations create exactly the schema ``qalqan.store.tables`` declares."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from qalqan.instance import Instance
from qalqan.store.tables import UNMANAGED_TABLES, metadata


def test_migrated_schema_matches_the_tables(instance: Instance) -> None:
    with instance.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_name": lambda name, kind, _parent: (
                    not (kind == "table" and name in UNMANAGED_TABLES)
                )
            },
        )
        assert compare_metadata(context, metadata) == []
