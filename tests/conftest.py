"""Shared fixtures: a fresh instance per test (SQLite, or PostgreSQL when
QALQAN_TEST_DATABASE_URL is set), an initialised node, and an API client."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import settings

from qalqan.api import create_app
from qalqan.instance import Instance
from qalqan.testing import TEST_DATABASE_ENV, TestNode, fresh_instance

# Compiling MISP's warninglists takes seconds: every test (and every CLI it starts) shares one
# compiled cache instead of building its own in its data dir.
os.environ.setdefault(
    "QALQAN_WARNINGLIST_CACHE", str(Path(tempfile.gettempdir()) / "qalqan-test-warninglists")
)

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

# Property-based tests have no per-example deadline: speed is measured in benchmarks/, and a
# loaded machine must not turn a slow example into a failure. In CI they also replay the same
# examples every run, so a verdict never depends on luck; locally they explore new ones.
settings.register_profile("local", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "local")


def _touches_database(item: pytest.Item) -> bool:
    """Does the test use the configured database: through the ``instance`` fixture, or a
    module of its own instances (``fresh_instance``) or of the test database's URL?"""
    names = vars(getattr(item, "module", None) or object())
    return (
        "instance" in getattr(item, "fixturenames", ())
        or "fresh_instance" in names
        or "TEST_DATABASE_ENV" in names
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With QALQAN_TEST_DATABASE_URL set (the PostgreSQL pass of CI, after the whole suite ran
    on SQLite), run only the tests that touch the database; the others (pure functions, the
    CLI in subprocesses on their own SQLite data dirs) would only run a second time."""
    if not os.environ.get(TEST_DATABASE_ENV):
        return
    kept = [item for item in items if _touches_database(item)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if not _touches_database(i)])
        items[:] = kept


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    with fresh_instance(tmp_path / "data") as inst:
        yield inst


@pytest.fixture
def node(instance: Instance) -> TestNode:
    return TestNode.create(instance)


@pytest.fixture
def client(instance: Instance) -> Iterator[TestClient]:
    with TestClient(create_app(instance)) as c:
        yield c


@pytest.fixture
def attack_bundle() -> Path:
    path = SHARED_DATA / "attack" / "ics-attack.json"
    if not path.exists():
        pytest.skip("the ATT&CK ICS bundle is not available")
    return path
