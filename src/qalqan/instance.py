"""An opened Qalqan instance: its settings, its database engine and its schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from qalqan.errors import ConfigurationError, StoreError
from qalqan.settings import Settings
from qalqan.store import migrate
from qalqan.store.engine import make_engine

__all__ = ["Instance"]


class Instance:
    """Settings plus engine; ``open`` brings the schema up to date."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.resolved_database_url)

    @classmethod
    def open(cls, settings: Settings, *, create: bool = True) -> Instance:
        """Open the instance, creating the data dir and running migrations if ``create``."""
        if create and not settings.database_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        elif not settings.database_url and not settings.data_dir.is_dir():
            # SQLite would only say "unable to open database file": say what to do instead.
            raise ConfigurationError(f"there is no data dir {settings.data_dir}; run `qalqan init`")
        instance = cls(settings)
        try:
            if create:
                migrate.upgrade(instance.engine)
            elif migrate.current_revision(instance.engine) != migrate.head_revision():
                raise ConfigurationError(
                    f"the database at {settings.data_dir} is not initialised; run `qalqan init`"
                )
        except OperationalError as exc:
            raise StoreError(f"cannot open the database: {exc.orig}") from exc
        return instance

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a transaction that commits on success and rolls back on error."""
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()
