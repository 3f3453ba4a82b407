"""Test helpers that ship with the package: fresh instances on SQLite or PostgreSQL, a node
with orgs and keys, and a small STIX object factory.

Set ``QALQAN_TEST_DATABASE_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``)
to run on PostgreSQL: each instance then gets a schema of its own (migrated once per process
and emptied for the next test).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import text

from qalqan import accounts
from qalqan.domain.principal import Principal, Role
from qalqan.instance import Instance
from qalqan.settings import Settings
from qalqan.store import accounts as store
from qalqan.store import migrate
from qalqan.store.engine import make_engine

__all__ = [
    "PROBLEM_JSON",
    "TEST_DATABASE_ENV",
    "TestNode",
    "assert_problem",
    "bundle",
    "fresh_instance",
    "indicator",
    "serving",
    "serving_app",
    "serving_directory",
    "stix_id",
]

TEST_DATABASE_ENV = "QALQAN_TEST_DATABASE_URL"
PROBLEM_JSON = "application/problem+json"
STAMP = "2026-01-01T00:00:00.000Z"


@contextmanager
def fresh_instance(data_dir: Path) -> Iterator[Instance]:
    """A migrated, empty instance: SQLite in ``data_dir``, or a PostgreSQL schema of its own.

    Migrating takes most of a small test's time, so it runs once per process: SQLite instances
    start from a copy of a migrated template file, and PostgreSQL schemas are migrated once,
    then emptied (and given back what the migrations wrote) when a test is done with them, for
    the next test of the process. A schema whose tables a test changed is dropped instead."""
    base = os.environ.get(TEST_DATABASE_ENV)
    data_dir.mkdir(parents=True, exist_ok=True)
    if not base:
        target = data_dir / "qalqan.db"
        shutil.copyfile(_sqlite_template(), target)
        instance = Instance(Settings(data_dir=data_dir, database_url=f"sqlite:///{target}"))
        try:
            yield instance
        finally:
            instance.close()
        return
    schema = _FREE_SCHEMAS.pop() if _FREE_SCHEMAS else _new_schema(base)
    instance = Instance(Settings(data_dir=data_dir, database_url=_schema_url(base, schema)))
    try:
        yield instance
    finally:
        instance.close()
        if _empty_schema(base, schema):
            _FREE_SCHEMAS.append(schema)
        else:
            _drop_schema(base, schema)


_FREE_SCHEMAS: list[str] = []
_SEED_ROWS: dict[str, list[dict[str, Any]]] = {}
_TEMPLATE: dict[str, Path] = {}


def _sqlite_template() -> Path:
    """A migrated SQLite database file of this process, made on first use."""
    if "sqlite" not in _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="qalqan-template-"))
        path = folder / "qalqan.db"
        instance = Instance(Settings(data_dir=folder, database_url=f"sqlite:///{path}"))
        try:
            migrate.upgrade(instance.engine)
        finally:
            instance.close()
        atexit.register(shutil.rmtree, folder, True)
        _TEMPLATE["sqlite"] = path
    return _TEMPLATE["sqlite"]


def _schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def _tables(conn: Any, schema: str) -> list[str]:
    rows = conn.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = :s AND tablename <> "
             "'alembic_version' ORDER BY tablename"),
        {"s": schema},
    )  # fmt: skip
    return [str(r[0]) for r in rows]


def _new_schema(base: str) -> str:
    """A new PostgreSQL schema, migrated; the rows the migrations wrote are remembered."""
    schema = f"qt_{uuid.uuid4().hex[:16]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    atexit.register(_drop_schema, base, schema)
    engine = make_engine(_schema_url(base, schema))
    try:
        migrate.upgrade(engine)
        if not _SEED_ROWS:
            with engine.begin() as conn:
                for table in _tables(conn, schema):
                    # The names come from pg_tables of the schema made here.
                    query = text(f'SELECT * FROM "{table}"')  # noqa: S608
                    rows = conn.execute(query).mappings().all()
                    _SEED_ROWS[table] = [dict(r) for r in rows]
    finally:
        engine.dispose()
    return schema


def _empty_schema(base: str, schema: str) -> bool:
    """Empty every table of the schema and put back what the migrations wrote; False when the
    schema is no longer the migrated one (or cannot be emptied now)."""
    engine = make_engine(_schema_url(base, schema))
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            tables = _tables(conn, schema)
            if version != migrate.head_revision() or set(tables) != set(_SEED_ROWS):
                return False
            names = ", ".join(f'"{t}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            for table, rows in _SEED_ROWS.items():
                if rows:
                    columns = list(rows[0])
                    listed = ", ".join(f'"{c}"' for c in columns)
                    values = ", ".join(f":{c}" for c in columns)
                    insert = text(f'INSERT INTO "{table}" ({listed}) VALUES ({values})')  # noqa: S608
                    conn.execute(insert, rows)
        return True
    except Exception:  # a test left the schema unusable: it is dropped instead
        return False
    finally:
        engine.dispose()


def _drop_schema(base: str, schema: str) -> None:
    admin = make_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()


@dataclass
class TestNode:
    """An initialised node with named orgs and one API key per user."""

    instance: Instance
    org_ids: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    principals: dict[str, Principal] = field(default_factory=dict)

    __test__ = False  # not a pytest test class

    @classmethod
    def create(cls, instance: Instance, first_org: str = "CERT-A", country: str = "KZ") -> TestNode:
        """Bootstrap the node; its admin is ``admin@a.test`` of ``first_org``."""
        node = cls(instance)
        with instance.begin() as conn:
            boot = accounts.bootstrap(
                conn,
                instance.settings.data_dir,
                node_name="test-node",
                org_name=first_org,
                country=country,
                admin_email="admin@a.test",
            )
            node.org_ids[first_org] = boot.org.id
            node.keys["admin@a.test"] = boot.key.secret
            node.principals["admin@a.test"] = accounts.principal_for(conn, boot.admin)
        return node

    def add_org(self, name: str, country: str = "UZ") -> str:
        with self.instance.begin() as conn:
            org = accounts.add_org(conn, None, name, country)
        self.org_ids[name] = org.id
        return org.id

    def add_user(self, email: str, org: str, role: Role = Role.ANALYST) -> str:
        """Add a user with an API key; returns the key."""
        with self.instance.begin() as conn:
            user = accounts.add_user(conn, None, email, self.org_ids[org], role)
            self.keys[email] = accounts.create_key(conn, None, user.id).secret
        self.refresh(email)
        return self.keys[email]

    def refresh(self, email: str) -> Principal:
        """Reload a user's principal (after sharing-group changes)."""
        with self.instance.begin() as conn:
            principal = accounts.principal_for(conn, store.get_user(conn, email))
        self.principals[email] = principal
        return principal

    def add_group(self, name: str, owner: str, members: list[str]) -> str:
        with self.instance.begin() as conn:
            group = accounts.create_group(
                conn, None, name, self.org_ids[owner], [self.org_ids[m] for m in members]
            )
        for email in list(self.principals):
            self.refresh(email)
        return group.id


def stix_id(type_name: str) -> str:
    """A new random STIX identifier of ``type_name``."""
    return f"{type_name}--{uuid.uuid4()}"


def indicator(value: str, kind: str = "ipv4-addr", **extra: Any) -> dict[str, Any]:
    """A STIX 2.1 indicator matching ``[kind:value = 'value']`` (or file hashes for hash kinds)."""
    path = f"{kind}:value"
    if kind in ("MD5", "SHA-1", "SHA-256"):
        path = f"file:hashes.'{kind}'"
    obj: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": stix_id("indicator"),
        "created": STAMP,
        "modified": STAMP,
        "name": value,
        "pattern": f"[{path} = '{value}']",
        "pattern_type": "stix",
        "valid_from": STAMP,
    }
    obj.update(extra)
    return obj


def bundle(*objects: dict[str, Any]) -> dict[str, Any]:
    """A STIX 2.1 bundle of ``objects``."""
    return {"type": "bundle", "id": stix_id("bundle"), "objects": list(objects)}


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert an HTTP response is an RFC 9457 problem with this status and code; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


@contextmanager
def serving(handler: Any) -> Iterator[str]:
    """An HTTP server with ``handler`` (a request handler class, or a partial of one) on a free
    port of 127.0.0.1, stopped on exit; yields its base URL ``http://127.0.0.1:PORT/``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged to the test output."""


def serving_directory(directory: Path) -> Any:
    """A context manager serving the files of ``directory`` over HTTP (see :func:`serving`)."""
    return serving(partial(_QuietFiles, directory=str(directory)))


@contextmanager
def serving_app(instance: Instance) -> Iterator[str]:
    """The Qalqan app of ``instance`` served by uvicorn on a free port of 127.0.0.1, stopped on
    exit; yields its base URL ``http://127.0.0.1:PORT`` (no trailing slash)."""
    import socket

    import uvicorn

    from qalqan.api import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(instance), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
