"""``qalqan attack`` and ``qalqan stats``: import ATT&CK, read techniques and statistics; one
clear line for bad input. Commands run in process on the test's instance."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from qalqan.cli.main import run
from qalqan.instance import Instance
from qalqan.testing import TEST_DATABASE_ENV, TestNode


class Cli:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
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
        return lines[0]


@pytest.fixture
def cli(
    instance: Instance, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    TestNode.create(instance, "CERT-A", "KZ")
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
    return Cli(monkeypatch, capsys)


def test_attack_import_and_techniques(cli: Cli, attack_bundle: Path) -> None:
    imported = cli.json("attack", "import", str(attack_bundle))["files"][0]
    assert (imported["created"], imported["techniques"], imported["rejected"]) == (1826, 95, 0)
    again = cli.json("attack", "import", str(attack_bundle))["files"][0]
    assert (again["created"], again["unchanged"]) == (0, 1826)
    assert cli.json("attack", "techniques")["items"] == []
    listed = cli.json("attack", "techniques", "--all", "--domain", "ics", "--limit", "5")
    assert len(listed["items"]) == 5
    detail = cli.json("attack", "techniques", "T0800")
    assert detail["technique"]["name"] == "Activate Firmware Update Mode"
    code, out, _ = cli("attack", "techniques", "--all", "--limit", "2")
    assert code == 0
    assert "T0800" in out
    assert "no ATT&CK technique" in cli.fails("attack", "techniques", "T0999")
    assert "domain" in cli.fails("attack", "techniques", "--domain", "cloud")


def test_stats_commands(cli: Cli) -> None:
    objects = cli.json("stats", "objects", "--by", "type,tlp", "--since", "1d")
    assert objects["by"] == ["type", "tlp"]
    assert {r["type"] for r in objects["rows"]} >= {"identity"}
    assert cli.json("stats", "sightings", "--by", "kind")["sightings"] == 0
    assert cli.json("stats", "top-values", "--kind", "ip")["items"] == []
    assert cli.json("stats", "feeds")["items"] == []
    code, out, _ = cli("stats", "objects", "--by", "type")
    assert code == 0
    assert "identity" in out
    assert "366 days" in cli.fails("stats", "objects", "--since", "60w")
    assert "by" in cli.fails("stats", "sightings", "--by", "tlp")
