"""Run the Alembic migrations that ship inside the package."""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

__all__ = ["current_revision", "head_revision", "new_revision", "upgrade"]

_SCRIPTS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema up to ``revision`` (default: the newest)."""
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def head_revision() -> str | None:
    """The newest migration shipped with this version of Qalqan."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def new_revision(message: str) -> Path:
    """Write a new migration with the changes between ``tables.py`` and the newest migration.

    The difference is found against a scratch SQLite database brought to the newest migration;
    read the generated file before committing it (Alembic cannot see renames, for one).
    """
    from qalqan.store.engine import make_engine

    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'head.db'}")
        upgrade(engine)
        cfg = _config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            head = head_revision() or "0000"
            number = f"{int(head) + 1:04d}" if head.isdigit() else None
            script = command.revision(cfg, message=message, autogenerate=True, rev_id=number)
        engine.dispose()
    assert script is not None
    assert not isinstance(script, list)
    return Path(script.path)
