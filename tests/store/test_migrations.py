"""Migrations, SQLite connection settings and the node's ``date_added`` clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from qalqan.errors import ConfigurationError
from qalqan.instance import Instance
from qalqan.settings import Settings
from qalqan.store import clock, migrate
from qalqan.store.engine import make_engine
from qalqan.store.tables import metadata, nodes, users
from qalqan.testing import TEST_DATABASE_ENV, TestNode


@pytest.fixture
def empty_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database: a new SQLite file, or a new PostgreSQL schema."""
    base = os.environ.get(TEST_DATABASE_ENV)
    if not base:
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    schema = f"qt_{uuid.uuid4().hex[:16]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    engine = make_engine(f"{base}{sep}options={quote(f'-csearch_path={schema}')}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _schema(engine: Engine) -> dict[str, list[str]]:
    found = inspect(engine)
    return {
        table: sorted(c["name"] for c in found.get_columns(table))
        for table in found.get_table_names()
    }


# --- migrations -----------------------------------------------------------------------------


def test_upgrade_on_an_empty_database_reaches_head(empty_engine: Engine) -> None:
    head = migrate.head_revision()
    assert head is not None
    assert migrate.current_revision(empty_engine) is None

    migrate.upgrade(empty_engine)

    assert migrate.current_revision(empty_engine) == head
    schema = _schema(empty_engine)
    for table in metadata.sorted_tables:
        assert sorted(c.name for c in table.columns) == schema.get(table.name), table.name


def test_upgrading_twice_changes_nothing(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    with empty_engine.begin() as conn:
        conn.execute(
            insert(nodes).values(
                id=str(uuid.uuid4()), name="n", public_key="k", is_local=True, clock=7, created_at=1
            )
        )
    before = _schema(empty_engine)

    migrate.upgrade(empty_engine)

    assert migrate.current_revision(empty_engine) == migrate.head_revision()
    assert _schema(empty_engine) == before
    with empty_engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert conn.execute(select(nodes.c.name, nodes.c.clock)).all() == [("n", 7)]


def test_opening_an_unmigrated_database_without_create_says_run_init(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'q.db'}")
    with pytest.raises(ConfigurationError, match="qalqan init"):
        Instance.open(settings, create=False)
    Instance.open(settings, create=True).close()
    Instance.open(settings, create=False).close()


# --- SQLite ---------------------------------------------------------------------------------


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    try:
        migrate.upgrade(engine)
        # Every pooled connection gets the settings, not only the first one.
        with engine.connect() as first, engine.connect() as second:
            for conn in (first, second):
                assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
                assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                insert(users).values(
                    id=str(uuid.uuid4()),
                    email="orphan@x.test",
                    org_id=str(uuid.uuid4()),
                    role="analyst",
                    disabled=False,
                    created_at=1,
                )
            )
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(users)).scalar() == 0
    finally:
        engine.dispose()


def test_postgresql_urls_are_sent_to_psycopg_3() -> None:
    engine = make_engine("postgresql://user@127.0.0.1:1/db")
    try:
        assert engine.dialect.name == "postgresql"
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


# --- the date_added clock -------------------------------------------------------------------


def test_reserve_needs_an_initialised_node(instance: Instance) -> None:
    with pytest.raises(ConfigurationError, match="qalqan init"), instance.begin() as conn:
        clock.reserve_date_added(conn, 1)


def test_reserve_is_strictly_increasing_in_a_tight_loop(node: TestNode) -> None:
    issued: list[int] = []
    with node.instance.begin() as conn:
        for _ in range(300):
            issued.append(clock.reserve_date_added(conn, 1))
    for count in (1, 5, 1, 100, 2) * 20:
        with node.instance.begin() as conn:
            first = clock.reserve_date_added(conn, count)
        issued.extend(range(first, first + count))
    assert issued == sorted(set(issued))
    with node.instance.begin() as conn:
        assert clock.local_clock(conn) == issued[-1]


def test_reserve_follows_the_wall_clock_when_it_is_ahead(node: TestNode) -> None:
    before = clock.now_us()
    with node.instance.begin() as conn:
        first = clock.reserve_date_added(conn, 3)
    assert first > before
    assert first <= clock.now_us() + 1


def test_reserve_keeps_increasing_when_the_wall_clock_is_behind(
    node: TestNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_now = clock.now_us()
    hour = 3_600_000_000
    monkeypatch.setattr(clock, "now_us", lambda: real_now + hour)
    with node.instance.begin() as conn:
        ahead = clock.reserve_date_added(conn, 10)
    assert ahead > real_now + hour

    # The wall clock jumps back an hour, then stands still.
    monkeypatch.setattr(clock, "now_us", lambda: real_now)
    issued = [ahead + 9]
    for count in (1, 1, 4, 1):
        with node.instance.begin() as conn:
            first = clock.reserve_date_added(conn, count)
        assert first == issued[-1] + 1
        issued.extend(range(first, first + count))
    assert issued == sorted(set(issued))


def test_a_rolled_back_reservation_leaves_the_clock_alone(node: TestNode) -> None:
    with node.instance.begin() as conn:
        kept = clock.reserve_date_added(conn, 1)
    with node.instance.engine.connect() as conn:
        transaction = conn.begin()
        clock.reserve_date_added(conn, 1000)
        transaction.rollback()
    with node.instance.begin() as conn:
        assert clock.local_clock(conn) == kept
        assert clock.reserve_date_added(conn, 1) > kept
