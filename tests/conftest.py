"""Shared fixtures: a fresh instance per test (SQLite, or PostgreSQL when
QALQAN_TEST_DATABASE_URL is set), an initialised node, and an API client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import settings

from qalqan.api import create_app
from qalqan.instance import Instance
from qalqan.testing import TestNode, fresh_instance

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

# In CI, property-based tests replay the same examples every run: a submission's verdict must
# not depend on luck. Locally they explore new examples each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


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
