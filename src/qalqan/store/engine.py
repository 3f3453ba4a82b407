"""Database engines: SQLite (WAL, foreign keys on) when embedded, PostgreSQL via psycopg 3."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import ArgumentError, DataError, NoSuchModuleError
from sqlalchemy.pool import ConnectionPoolEntry

from qalqan.errors import ConfigurationError, InvalidInput

__all__ = ["make_engine", "sql_literal"]


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def _refuse_unstorable_value(context: ExceptionContext) -> None:
    # A value the database cannot hold (text with a NUL character on PostgreSQL, a number out of
    # range) comes from the caller: refuse it as invalid input rather than fail as a server error.
    if isinstance(context.sqlalchemy_exception, DataError):
        reason = str(context.original_exception).strip().splitlines()[0]
        raise InvalidInput(
            f"the database refuses a value: {reason}"
        ) from context.original_exception


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite connections get WAL and enforced foreign keys."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        if url.startswith("sqlite"):
            engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
            )
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, **kwargs)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigurationError(f"cannot use database URL: {exc}") from exc
    event.listen(engine, "handle_error", _refuse_unstorable_value)
    return engine


def sql_literal(value: object) -> str:
    """An SQL literal of one of our own values (numbers, ids, enum names), quoted as the SQL
    standard says; never used for text that comes from outside."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and "\x00" not in value:
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {value!r}")
