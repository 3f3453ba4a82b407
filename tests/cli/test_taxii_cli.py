"""``qalqan taxii collection``: define, list and remove collections; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_cli import Cli, bearer


@pytest.fixture
def qalqan(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "data")
    cli.init = cli.json("init")
    return cli


def test_collection_lifecycle(qalqan: Cli) -> None:
    defaults = qalqan.json("taxii", "collection", "list")
    assert {c["alias"] for c in defaults} == {"all", "indicators-green"}
    added = qalqan.json(
        "taxii", "collection", "add", "Phishing domains", "--alias", "phishing",
        "--type", "indicator", "--type", "domain-name", "--max-tlp", "amber", "--writable",
    )  # fmt: skip
    assert added["types"] == ["domain-name", "indicator"]
    assert added["max_tlp"] == "AMBER"
    assert added["writable"] is True
    table = qalqan.ok("taxii", "collection", "list").stdout
    assert "phishing" in table
    key = qalqan.init["api_key"]
    with qalqan.api() as client:
        headers = {**bearer(key), "Accept": "application/taxii+json;version=2.1"}
        listed = client.get("/taxii2/api/collections/", headers=headers).json()["collections"]
        assert "phishing" in {c.get("alias") for c in listed}
    qalqan.ok("taxii", "collection", "remove", "phishing")
    assert "phishing" not in {c["alias"] for c in qalqan.json("taxii", "collection", "list")}


def test_collection_errors_are_one_line(qalqan: Cli) -> None:
    assert "alias" in qalqan.fails("taxii", "collection", "add", "x", "--alias", "Not Valid")
    assert "TLP" in qalqan.fails("taxii", "collection", "add", "x", "--max-tlp", "purple")
    assert "sharing group" in qalqan.fails(
        "taxii", "collection", "add", "x", "--sharing-group", "nope"
    )
    assert "already exists" in qalqan.fails("taxii", "collection", "add", "x", "--alias", "all")
    assert "no stored collection" in qalqan.fails("taxii", "collection", "remove", "nope")


def test_help(qalqan: Cli) -> None:
    for args in (("taxii",), ("taxii", "collection"), ("taxii", "collection", "add")):
        assert "Usage" in qalqan.ok(*args, "--help").stdout
