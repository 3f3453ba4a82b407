"""``qalqan sighting``: report a sighting, read totals and notifications; one clear line for a
bad report or an unknown indicator. Commands run in process on the test's instance."""

from __future__ import annotations

import os
import sys
from typing import Any

import orjson
import pytest

from qalqan.accounts import system_principal
from qalqan.cli.main import run
from qalqan.domain.handling import TLP, Distribution
from qalqan.instance import Instance
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.store import accounts as accounts_store
from qalqan.testing import TEST_DATABASE_ENV, TestNode, indicator, stix_id


class Cli:
    def __init__(
        self, node: TestNode, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.node = node
        self.monkeypatch = monkeypatch
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "argv", ["qalqan", *args])
        with pytest.raises(SystemExit) as exit_info:
            run()
        out, err = self.capsys.readouterr()
        code = exit_info.value.code
        return (code if isinstance(code, int) else 0), out, err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return orjson.loads(out)

    def fails(self, *args: str) -> str:
        code, _, err = self(*args)
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("error: ")
        return lines[0]


@pytest.fixture
def cli(
    instance: Instance, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    node = TestNode.create(instance, "CERT-A", "KZ")
    node.add_org("CERT-B", "UZ")
    for name in list(os.environ):
        if name.startswith("QALQAN_") and name not in (
            TEST_DATABASE_ENV,
            "QALQAN_WARNINGLIST_CACHE",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QALQAN_DATA_DIR", str(instance.settings.data_dir))
    assert instance.settings.database_url
    monkeypatch.setenv("QALQAN_DATABASE_URL", instance.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    return Cli(node, monkeypatch, capsys)


def _publish(cli: Cli, org: str, distribution: Distribution = Distribution.NODE) -> str:
    obj = indicator("198.51.100.20")
    with cli.node.instance.begin() as conn:
        principal = system_principal(accounts_store.get_org(conn, cli.node.org_ids[org]), conn)
        import_objects(conn, principal, [obj], HandlingRequest(TLP.GREEN, distribution))
    return str(obj["id"])


def test_a_sighting_added_on_the_command_line_reaches_the_owner(cli: Cli) -> None:
    ioc = _publish(cli, "CERT-A")
    added = cli.json(
        "sighting", "add", ioc, "--count", "4", "--last-seen", "2026-02-01T00:00:00Z",
        "--org", "CERT-B",
    )  # fmt: skip
    assert (added["created"], added["shared"]) == (1, 1)
    code, out, _ = cli("sighting", "add", ioc, "--no-share", "--org", "CERT-B")
    assert code == 0
    assert "not shared" in out
    totals = cli.json("sighting", "totals", ioc, "--org", "CERT-A")
    assert totals["totals"]["sighting"]["count"] == 4
    assert [o["org"]["name"] for o in totals["by_org"]] == ["CERT-B"]
    code, out, _ = cli("sighting", "totals", ioc, "--org", "CERT-B")
    assert code == 0
    assert "CERT-B" in out
    notes = cli.json("sighting", "notifications", "--unread", "--org", "CERT-A")
    assert [n["subject"] for n in notes["items"]] == [ioc]


def test_bad_sightings_are_one_clear_line(cli: Cli) -> None:
    hidden = _publish(cli, "CERT-A", Distribution.ORGANIZATION)
    assert cli.fails("sighting", "add", hidden, "--org", "CERT-B") == f"error: no object {hidden}"
    missing = stix_id("indicator")
    assert cli.fails("sighting", "add", missing, "--org", "CERT-B") == f"error: no object {missing}"
    assert "count" in cli.fails("sighting", "add", hidden, "--count", "-1")
    assert "kind" in cli.fails("sighting", "add", hidden, "--kind", "rumour")
    assert f"no object {hidden}" in cli.fails("sighting", "totals", hidden, "--org", "CERT-B")
