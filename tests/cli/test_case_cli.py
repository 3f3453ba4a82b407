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


def _case(cli: Cli) -> str:
    made = cli.json("case", "create", "--title", "Botnet", "--org", "CERT-B")
    cli.ok("case", "invite", str(made["number"]), "CERT-C", "--role", "observer", "--org", "CERT-B")
    return str(made["number"])


def test_comments_timeline_and_observables(cli: Cli) -> None:
    ref = _case(cli)
    first = cli.json("case", "comment", ref, "seen by @CERT-C too", "--org", "CERT-C")
    assert first["body"] == "seen by @CERT-C too"
    assert len(first["mentions"]) == 1
    assert "comment" in cli.ok("case", "comment", ref, "<i>second</i>", "--org", "CERT-B").stdout
    page = cli.json("case", "comments", ref, "--limit", "1", "--org", "CERT-B")
    assert [c["body"] for c in page["items"]] == ["seen by @CERT-C too"]
    rest = cli.json("case", "comments", ref, "--cursor", page["next"], "--org", "CERT-B")
    assert [c["body"] for c in rest["items"]] == ["<i>second</i>"]
    assert rest["next"] is None
    table = cli.ok("case", "comments", ref, "--org", "CERT-C").stdout
    assert "<i>second</i>" in table
    assert "CERT-B" in table

    note = cli.json(
        "case", "note", ref, "C2 went dark", "--at", "2026-11-01T10:00:00Z", "--org", "CERT-C"
    )
    assert note["kind"] == "manual"
    assert note["event_time"] == "2026-11-01T10:00:00Z"
    timeline = cli.json("case", "timeline", ref, "--limit", "2", "--org", "CERT-B")
    assert timeline["items"][0]["text"] == "C2 went dark"
    assert timeline["next"] is not None
    older = cli.json("case", "timeline", ref, "--cursor", timeline["next"], "--org", "CERT-B")
    assert older["items"][-1]["action"] == "case.create"
    assert "2026-11-01T10:00:00Z" in cli.ok("case", "timeline", ref, "--org", "CERT-B").stdout

    added = cli.json("case", "observable", "add", ref, "auto", "evil[.]example", "--org", "CERT-B")
    assert (added["kind"], added["value"]) == ("domain", "evil.example")
    assert added["correlation"]["objects"] == 0
    cli.ok(
        "case", "observable", "add", ref, "ip", "198.51.100.7", "--note", "C2", "--org", "CERT-B"
    )
    listed = cli.json("case", "observable", "list", ref, "--limit", "1", "--org", "CERT-C")
    assert [o["value"] for o in listed["items"]] == ["evil.example"]
    more = cli.json(
        "case", "observable", "list", ref, "--cursor", listed["next"], "--org", "CERT-C"
    )
    assert [o["value"] for o in more["items"]] == ["198.51.100.7"]
    table = cli.ok("case", "observable", "list", ref, "--org", "CERT-B").stdout
    assert "198.51.100.7" in table
    assert "nowhere" in table
    cli.ok("case", "observable", "remove", ref, "domain", "evil.example", "--org", "CERT-B")
    left = cli.json("case", "observable", "list", ref, "--org", "CERT-B")["items"]
    assert [o["value"] for o in left] == ["198.51.100.7"]
    cli.ok("audit", "verify")


def test_update_a_case_and_work_its_tasks(cli: Cli) -> None:
    ref = _case(cli)
    changed = cli.json(
        "case", "update", ref, "--title", "Botnet C2", "--severity", "critical", "--tlp",
        "amber+strict", "--pap", "red", "--label", "botnet", "--label", "c2", "--technique",
        "t1071", "--org", "CERT-B",
    )  # fmt: skip
    shown = (changed["title"], changed["severity"], changed["tlp"], changed["pap"])
    assert shown == ("Botnet C2", "critical", "amber+strict", "red")
    assert changed["labels"] == ["botnet", "c2"]
    assert changed["techniques"] == ["T1071"]
    cleared = cli.json("case", "update", ref, "--clear-labels", "--org", "CERT-B")
    assert cleared["labels"] == []
    assert "does not allow" in cli.fails("case", "update", ref, "--title", "x", "--org", "CERT-C")

    templates = cli.json("case", "templates")
    assert [t["name"] for t in templates][:2] == ["ransomware", "phishing-campaign"]
    assert "online-fraud" in cli.ok("case", "templates").stdout

    first = cli.json("case", "task", "add", ref, "--title", "Sinkhole", "--org", "CERT-B")
    cli.ok("case", "task", "add", ref, "--title", "Notify hosters", "--org", "CERT-B")
    page = cli.json("case", "task", "list", ref, "--limit", "1", "--org", "CERT-B")
    assert [t["title"] for t in page["items"]] == ["Notify hosters"]
    rest = cli.json("case", "task", "list", ref, "--cursor", page["next"], "--org", "CERT-B")
    assert [t["title"] for t in rest["items"]] == ["Sinkhole"]
    task = first["id"]
    done = cli.json(
        "case", "task", "update", task, "--status", "in-progress", "--due", "2020-01-01",
        "--title", "Sinkhole the C2", "--org", "CERT-B",
    )  # fmt: skip
    assert (done["status"], done["title"], done["overdue"]) == (
        "in-progress",
        "Sinkhole the C2",
        True,
    )
    overdue = cli.json("case", "task", "list", "--overdue", "--org", "CERT-B")["items"]
    assert [t["id"] for t in overdue] == [task]
    assert cli.json("case", "task", "update", task, "--due", "", "--org", "CERT-B")["due"] is None
    entry = cli.json("case", "task", "log", task, "asked the registrar", "--org", "CERT-B")
    assert entry["text"] == "asked the registrar"
    log = cli.json("case", "task", "log", task, "--org", "CERT-C")
    assert [e["text"] for e in log] == ["asked the registrar"]
    assert "asked the registrar" in cli.ok("case", "task", "log", task, "--org", "CERT-B").stdout
    assert task in cli.ok("case", "task", "list", ref, "--org", "CERT-B").stdout
    cli.ok("audit", "verify")


def test_new_commands_fail_with_one_clear_line(cli: Cli) -> None:
    ref = _case(cli)
    assert "nothing to change" in cli.fails("case", "update", ref, "--org", "CERT-B")
    assert "nothing to change" in cli.fails(
        "case", "task", "update", "00000000-0000-0000-0000-000000000000", "--org", "CERT-B"
    )
    line = cli.fails("case", "update", ref, "--label", "x", "--clear-labels", "--org", "CERT-B")
    assert "labels" in line
    assert "tlp" in cli.fails("case", "update", ref, "--tlp", "purple", "--org", "CERT-B")
    assert "assignees" in cli.fails(
        "case", "update", ref, "--assignee", "nobody@x.test", "--org", "CERT-B"
    )
    assert "cursor" in cli.fails("case", "comments", ref, "--cursor", "zzz", "--org", "CERT-B")
    assert "at" in cli.fails("case", "note", ref, "x", "--at", "yesterday", "--org", "CERT-B")
    assert "value" in cli.fails(
        "case", "observable", "add", ref, "ip", "not-an-ip", "--org", "CERT-B"
    )
    assert "no task" in cli.fails(
        "case", "task", "log", "00000000-0000-0000-0000-000000000000", "x", "--org", "CERT-B"
    )
    assert "status" in cli.fails(
        "case", "task", "list", ref, "--status", "someday", "--org", "CERT-B"
    )
    # An org that takes no part learns nothing, whatever the command.
    for args in (("comments", ref), ("timeline", ref), ("observable", "list", ref)):
        assert cli.fails("case", *args).startswith("error: no case")
    assert cli.fails("case", "task", "list", ref).startswith("error: no case")
