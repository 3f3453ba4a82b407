"""``qalqan case``, run for real as a subprocess on a SQLite data dir: open a case as another
org, list and show it, add a task, invite an org, move it through its workflow; clear one-line
errors for what is wrong or not visible."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .test_cli import Cli


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    template = Cli(tmp_path_factory.mktemp("case-template") / "data")
    template.init = template.json("init")
    template.ok("org", "add", "CERT-B", "--country", "UZ")
    template.ok("org", "add", "CERT-C", "--country", "KG")
    return template


@pytest.fixture
def cli(initialised: Cli, tmp_path: Path) -> Cli:
    copy = Cli(tmp_path / "data", init=initialised.init)
    shutil.copytree(initialised.data_dir, copy.data_dir)
    return copy


def test_open_a_case_as_another_org_and_verify_the_audit_log(cli: Cli) -> None:
    result = cli.ok("case", "create", "--title", "Ransomware against hospitals", "--org", "CERT-B")
    assert "opened case #1" in result.stdout
    cli.ok("audit", "verify")
    shown = cli.json("case", "show", "1", "--org", "CERT-B")
    assert shown["case"]["title"] == "Ransomware against hospitals"
    assert [(p["org_name"], p["role"]) for p in shown["participants"]] == [("CERT-B", "lead")]
    # The node's first org takes no part: it does not learn the case exists.
    assert cli.fails("case", "show", "1").startswith("error: no case")
    assert cli.json("case", "list") == []


def test_workflow_from_the_command_line(cli: Cli) -> None:
    case = cli.json(
        "case", "create", "--title", "<b>Phish</b>", "--template", "phishing-campaign",
        "--label", "banks", "--tlp", "red", "--org", "CERT-B",
    )  # fmt: skip
    assert case["title"] == "<b>Phish</b>"
    assert case["tlp"] == "red"
    assert case["labels"] == ["banks", "phishing"]
    ref = str(case["number"])
    invited = cli.json("case", "invite", ref, "CERT-C", "--role", "observer", "--org", "CERT-B")
    assert invited["role"] == "observer"
    task = cli.json(
        "case", "task", "add", ref, "--title", "Takedown", "--due", "2026-12-01", "--org", "CERT-B"
    )
    assert task["due"] == "2026-12-01T00:00:00Z"
    assert cli.json("case", "list", "--org", "CERT-C")[0]["id"] == case["id"]
    assert cli.json("case", "list", "--label", "banks", "--org", "CERT-B")[0]["id"] == case["id"]
    assert cli.json("case", "list", "--text", "nothing-like-it", "--org", "CERT-B") == []
    line = cli.fails("case", "status", ref, "resolved", "--org", "CERT-C")
    assert "does not allow" in line
    line = cli.fails("case", "status", ref, "new", "--org", "CERT-B")
    assert "allowed next: in-progress, on-hold, resolved, closed" in line
    done = cli.json("case", "status", ref, "closed", "--resolution", "gone", "--org", "CERT-B")
    assert done["status"] == "closed"
    assert done["resolution"] == "gone"
    shown = cli.ok("case", "show", ref, "--org", "CERT-B").stdout
    assert "<b>Phish</b>" in shown
    assert "Takedown" in shown
    cli.ok("audit", "verify")


def test_bad_input_is_one_clear_line(cli: Cli) -> None:
    assert "title" in cli.fails("case", "create", "--title", "x" * 400, "--org", "CERT-B")
    assert "template" in cli.fails(
        "case", "create", "--title", "x", "--template", "flood", "--org", "CERT-B"
    )
    assert "NOPE" in cli.fails("case", "create", "--title", "x", "--org", "NOPE")
    cli.ok("case", "create", "--title", "x", "--org", "CERT-B")
    assert "org" in cli.fails("case", "invite", "1", "NOPE", "--org", "CERT-B")
    assert "due" in cli.fails("case", "task", "add", "1", "--title", "t", "--due", "soon")
