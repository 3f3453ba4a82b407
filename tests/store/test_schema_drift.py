"""The migrations create exactly the schema ``qalqan.store.tables`` declares."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from qalqan.instance import Instance
from qalqan.store.tables import metadata


def test_migrated_schema_matches_the_tables(instance: Instance) -> None:
    with instance.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
