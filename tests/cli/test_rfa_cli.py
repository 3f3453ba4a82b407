"""``qalqan rfa``: draft, send and answer a request between two orgs from the command line,
read it back as a table and as JSON, and get one clear line for every mistake."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .test_cli import Cli


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    template = Cli(tmp_path_factory.mktemp("rfa-template") / "data")
    template.init = template.json("init")
    template.ok("org", "add", "CERT-C", "--country", "UZ")
    return template


@pytest.fixture
def two_orgs(initialised: Cli, tmp_path: Path) -> Cli:
    """A copy of an initialised node with a second org, CERT-C, besides the first."""
    copy = Cli(tmp_path / "data", init=initialised.init)
    shutil.copytree(initialised.data_dir, copy.data_dir)
    return copy


def _due() -> str:
    return (datetime.now(UTC) + timedelta(days=3)).date().isoformat()


def test_a_request_goes_round_trip(two_orgs: Cli) -> None:
    cli = two_orgs
    made = cli.json(
        "rfa", "create", "--to", "CERT-C", "--kind", "data-preservation",
        "--title", "Keep logs of <b>host</b>", "--legal-basis", "MLAT art. 3",
        "--due", _due(), "--priority", "urgent", "--observable", "evil[.]example",
    )  # fmt: skip
    assert made["status"] == "draft"
    assert made["observables"] == [{"kind": "domain", "value": "evil.example"}]
    number = str(made["number"])
    # The recipient does not see a draft.
    assert cli.json("rfa", "list", "--org", "CERT-C")["items"] == []
    cli.fails("rfa", "show", number, "--org", "CERT-C")
    cli.ok("rfa", "transition", number, "--to", "sent")
    received = cli.json("rfa", "list", "--org", "CERT-C", "--role", "received")["items"]
    assert [r["id"] for r in received] == [made["id"]]
    line = cli.fails(
        "rfa", "transition", number, "--to", "answered", "--answer", "x", "--org", "CERT-C"
    )
    assert "acknowledged" in line
    cli.ok("rfa", "transition", number, "--to", "acknowledged", "--org", "CERT-C")
    done = cli.json(
        "rfa", "transition", made["id"], "--to", "answered", "--answer", "kept", "--org", "CERT-C"
    )
    assert done["status"] == "answered"
    assert done["answer"] == "kept"
    shown = cli.ok("rfa", "show", number).stdout
    assert "Keep logs of <b>host</b>" in shown
    assert "answered" in shown
    assert "domain: evil.example" in shown
    table = cli.ok("rfa", "list", "--status", "answered").stdout
    assert "CERT-C" in table
    assert cli.json("rfa", "list", "--overdue")["items"] == []
    assert cli.json("rfa", "notify-overdue")["notified"] == 0


def test_mistakes_are_one_clear_line(two_orgs: Cli) -> None:
    cli = two_orgs
    assert "no organization" in cli.fails(
        "rfa", "create", "--to", "CERT-Z", "--kind", "other", "--title", "t"
    )
    assert "due" in cli.fails(
        "rfa", "create", "--to", "CERT-C", "--kind", "other", "--title", "t", "--due", "2001-01-01"
    )
    assert "kind" in cli.fails(
        "rfa", "create", "--to", "CERT-C", "--kind", "favour", "--title", "t"
    )
    assert "no request" in cli.fails("rfa", "show", "4242")
    assert "cursor" in cli.fails("rfa", "list", "--cursor", "garbage")
