"""The ``qalqan`` command, run for real as a subprocess on a SQLite data dir.

These tests always use SQLite (the data dir's own file), whichever database the rest of the
suite runs on: what they check is the command line, not the store.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.core import TyperGroup

from qalqan.api import create_app
from qalqan.cli.main import app, run
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Role
from qalqan.instance import Instance
from qalqan.policy import handling_problem
from qalqan.settings import Settings
from qalqan.store import accounts as store
from qalqan.store.tables import object_versions
from qalqan.testing import bundle, indicator, stix_id

QALQAN = Path(sys.executable).parent / "qalqan"
ADMIN = "admin@localhost.localdomain"


@dataclass
class Cli:
    """Runs ``qalqan`` on one data dir, with a plain 80-column, colourless environment."""

    data_dir: Path
    init: dict[str, Any] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("QALQAN_") and k not in ("FORCE_COLOR", "TTY_COMPATIBLE")
        }
        env.update(QALQAN_DATA_DIR=str(self.data_dir), COLUMNS="80", NO_COLOR="1")
        return env

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(QALQAN), *args],
            env=self.env(),
            cwd=self.data_dir.parent,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self(*args)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result

    def json(self, *args: str) -> Any:
        return orjson.loads(self.ok(*args, "--json").stdout)

    def fails(self, *args: str) -> str:
        """Run a command that must fail with one clear line on stderr; return that line."""
        result = self(*args)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ")
        return lines[0]

    @contextmanager
    def api(self) -> Iterator[TestClient]:
        """The REST API serving this data dir, in process."""
        instance = Instance.open(Settings(data_dir=self.data_dir, database_url=None), create=False)
        try:
            with TestClient(create_app(instance)) as client:
                yield client
        finally:
            instance.close()

    @contextmanager
    def database(self) -> Iterator[Any]:
        instance = Instance.open(Settings(data_dir=self.data_dir, database_url=None), create=False)
        try:
            with instance.begin() as conn:
                yield conn
        finally:
            instance.close()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A data dir nobody has initialised yet."""
    return Cli(tmp_path / "data")


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A data dir ``qalqan init`` set up once; tests work on copies of it."""
    template = Cli(tmp_path_factory.mktemp("template") / "data")
    template.init = template.json("init")
    return template


@pytest.fixture
def ready(initialised: Cli, tmp_path: Path) -> Cli:
    """A copy of an initialised data dir; ``init`` holds what ``qalqan init --json`` printed."""
    copy = Cli(tmp_path / "data", init=initialised.init)
    shutil.copytree(initialised.data_dir, copy.data_dir)
    return copy


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- help -----------------------------------------------------------------------------------


def _command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the CLI, as the words that name it."""
    paths: list[tuple[str, ...]] = [()]

    def walk(group: Any, prefix: tuple[str, ...]) -> None:
        for name, command in sorted(group.commands.items()):
            paths.append((*prefix, name))
            if isinstance(command, TyperGroup):
                walk(command, (*prefix, name))

    walk(typer.main.get_command(app), ())
    return paths


COMMANDS = _command_paths()


def test_the_command_tree_is_complete() -> None:
    expected = {
        ("init",),
        ("serve",),
        ("demo",),
        ("import",),
        ("export",),
        *[("org", c) for c in ("add", "list")],
        *[("user", c) for c in ("add", "list")],
        *[("key", c) for c in ("create", "list", "revoke")],
        *[("group", c) for c in ("add", "member-add", "list")],
    }
    assert expected <= set(COMMANDS)


def test_help_of_the_installed_command(cli: Cli) -> None:
    result = cli.ok("--help")
    assert "Usage:" in result.stdout
    for name in ("init", "import", "export", "org", "key"):
        assert name in result.stdout


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(("qalqan", *w)))
def test_help_of_every_command(
    words: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # In process, through the console script's entry point: a new interpreter per command
    # would cost a second each.
    monkeypatch.setenv("QALQAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(sys, "argv", ["qalqan", *words, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        run()
    assert exit_info.value.code == 0
    out, err = capsys.readouterr()
    assert "Usage:" in out
    assert "Traceback" not in err
    assert not (tmp_path / "data").exists()  # asking for help touches nothing


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (("org", "add", "CERT-X"), "Missing"),
        (("nosuch",), "No such command"),
        ((), "Usage:"),
    ],
    ids=["missing-option", "unknown-command", "no-command"],
)
def test_usage_errors_explain_themselves_without_a_traceback(
    cli: Cli, words: tuple[str, ...], message: str
) -> None:
    result = cli(*words)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stdout + result.stderr


# --- init -----------------------------------------------------------------------------------


def test_init_prints_node_org_and_key_once(ready: Cli) -> None:
    boot = ready.init
    assert boot["node"]["id"]
    assert boot["node"]["public_key"]
    assert boot["org"]["name"] == "Local-CERT"
    assert boot["org"]["country"] == "KZ"
    assert boot["admin"] == {"id": boot["admin"]["id"], "email": ADMIN, "role": "node-admin"}
    assert boot["api_key"].startswith("qk_")
    key_file = ready.data_dir / "node_ed25519.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with ready.api() as client:
        me = client.get("/api/v1/me", headers=bearer(boot["api_key"]))
    assert me.status_code == 200
    assert me.json()["email"] == ADMIN


def test_a_second_init_fails_with_one_line(ready: Cli) -> None:
    line = ready.fails("init")
    assert "already initialised" in line


def test_commands_before_init_say_to_run_init(cli: Cli) -> None:
    assert "qalqan init" in cli.fails("org", "list")
    cli.data_dir.mkdir()
    assert "qalqan init" in cli.fails("org", "list")


# --- accounts -------------------------------------------------------------------------------


def test_org_add_with_an_unknown_country_names_it(ready: Cli) -> None:
    line = ready.fails("org", "add", "CERT-Nowhere", "--country", "ZZ")
    assert "'ZZ'" in line
    assert "country" in line


def test_orgs_users_and_keys(ready: Cli) -> None:
    org = ready.json("org", "add", "CERT-UZ", "--country", "uz", "--default-tlp", "green")
    assert (org["name"], org["country"], org["default_tlp"]) == ("CERT-UZ", "UZ", "GREEN")
    assert org["identity_id"] == f"identity--{org['id']}"
    assert {o["name"] for o in ready.json("org", "list")} == {"Local-CERT", "CERT-UZ"}

    user = ready.json("user", "add", "Analyst@UZ.test", "--org", "CERT-UZ", "--role", "reader")
    assert (user["email"], user["org_id"], user["role"]) == ("analyst@uz.test", org["id"], "reader")
    assert [u["id"] for u in ready.json("user", "list", "--org", "CERT-UZ")] == [user["id"]]
    assert "role" in ready.fails("user", "add", "x@uz.test", "--org", "CERT-UZ", "--role", "boss")

    key = ready.json("key", "create", "--user", "analyst@uz.test", "--label", "sensor")
    assert key["key"].startswith(key["prefix"])
    assert (key["user_id"], key["label"], key["revoked"]) == (user["id"], "sensor", None)

    group = ready.json("group", "add", "Energy", "--org", "Local-CERT", "--member", "CERT-UZ")
    assert set(group["member_org_ids"]) == {ready.init["org"]["id"], org["id"]}


def test_names_print_as_they_are(ready: Cli) -> None:
    name = "CERT[/x] [bold]<b>"
    assert name in ready.ok("org", "add", name, "--country", "UZ").stdout
    assert name in {o["name"] for o in ready.json("org", "list")}


def test_org_defaults_and_group_membership(ready: Cli) -> None:
    ready.ok("org", "add", "CERT-KG", "--country", "KG")
    ready.ok("group", "add", "Energy", "--org", "Local-CERT")
    ready.ok("group", "member-add", "Energy", "CERT-KG")
    org = ready.json(
        "org",
        "set",
        "CERT-KG",
        "--default-tlp",
        "amber+strict",
        "--default-distribution",
        "sharing_group",
        "--default-sharing-group",
        "Energy",
    )
    assert (org["default_tlp"], org["default_distribution"]) == ("AMBER+STRICT", "sharing_group")
    assert org["default_sharing_group"]
    assert "TLP:RED" in ready.fails(
        "org", "set", "CERT-KG", "--default-tlp", "red", "--default-distribution", "node"
    )
    ready.ok("group", "member-remove", "Energy", "CERT-KG")
    (group,) = ready.json("group", "list")
    assert group["member_org_ids"] == [ready.init["org"]["id"]]
    assert "owner" in ready.fails("group", "member-remove", "Energy", "Local-CERT")


def test_a_revoked_key_is_refused_by_the_api(ready: Cli) -> None:
    key = ready.json("key", "create", "--user", ADMIN)
    with ready.api() as client:
        assert client.get("/api/v1/me", headers=bearer(key["key"])).status_code == 200

    result = ready.ok("key", "revoke", key["id"])
    assert key["prefix"] in result.stdout

    with ready.api() as client:
        assert client.get("/api/v1/me", headers=bearer(key["key"])).status_code == 401
        # Only that key: the one init printed still works.
        assert client.get("/api/v1/me", headers=bearer(ready.init["api_key"])).status_code == 200
    listed = {k["id"]: k for k in ready.json("key", "list")}
    assert listed[key["id"]]["revoked"] is not None
    assert listed[key["id"]]["prefix"] == key["prefix"]
    assert all("key" not in k for k in listed.values())  # secrets are never listed


# --- import and export ----------------------------------------------------------------------


def _mixed_bundle() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    good = [indicator("198.51.100.1"), indicator("evil.example.com", kind="domain-name")]
    bad_version = indicator("198.51.100.2", spec_version="2.0")
    dangling = {
        "type": "relationship",
        "spec_version": "2.1",
        "id": stix_id("relationship"),
        "created": good[0]["created"],
        "modified": good[0]["modified"],
        "relationship_type": "indicates",
        "source_ref": good[0]["id"],
        "target_ref": stix_id("malware"),
    }
    return bundle(good[0], bad_version, "oops", good[1], dangling), good


def test_import_reports_accepted_and_rejected_objects(ready: Cli) -> None:
    document, good = _mixed_bundle()
    path = ready.data_dir.parent / "mixed.json"
    path.write_bytes(orjson.dumps(document))

    result = ready.ok("import", str(path))
    lines = result.stdout.splitlines()
    assert lines[0] == "2 accepted (2 new, 0 unchanged), 3 rejected"
    for text in ("index", "field", "reason", "spec_version", "target_ref"):
        assert text in result.stdout

    report = ready.json("import", str(path))
    assert {k: report[k] for k in ("accepted", "created", "unchanged", "rejected")} == {
        "accepted": 2,
        "created": 0,
        "unchanged": 2,
        "rejected": 3,
    }
    assert report["objects"] == [
        {"index": 0, "id": good[0]["id"], "status": "unchanged"},
        {"index": 3, "id": good[1]["id"], "status": "unchanged"},
    ]
    errors = {e["index"]: e for e in report["errors"]}
    assert set(errors) == {1, 2, 4}
    assert errors[1]["field"] == "spec_version"
    assert errors[1]["id"] == document["objects"][1]["id"]
    assert errors[2]["id"] is None
    assert errors[4]["field"] == "target_ref"
    assert all(e["reason"] and e["code"] == "invalid_input" for e in errors.values())


def test_import_with_handling_options(ready: Cli) -> None:
    obj = indicator("198.51.100.1")
    path = ready.data_dir.parent / "one.json"
    path.write_bytes(orjson.dumps(obj))
    report = ready.json("import", str(path), "--tlp", "red", "--distribution", "organization")
    assert report["created"] == 1
    with ready.database() as conn:
        row = conn.execute(
            select(object_versions.c.tlp, object_versions.c.distribution).where(
                object_versions.c.stix_id == obj["id"]
            )
        ).one()
    assert tuple(row) == (TLP.RED, "organization")
    assert "tlp" in ready.fails("import", str(path), "--tlp", "purple")


def test_import_of_only_bad_objects_exits_1(ready: Cli) -> None:
    path = ready.data_dir.parent / "bad.json"
    path.write_bytes(orjson.dumps([1, {"type": "indicator"}]))
    result = ready("import", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout.splitlines()[0] == "0 accepted (0 new, 0 unchanged), 2 rejected"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"{not json", "not valid JSON"),
        (b'{"hello": "world"}', "expected a STIX 2.1 bundle"),
        (b'{"type": "bundle", "id": "bundle--1", "objects": "none"}', "not a STIX 2.1 bundle"),
    ],
    ids=["missing", "not-json", "not-stix", "bad-bundle"],
)
def test_import_of_something_else_fails_with_one_line(
    cli: Cli, content: bytes | None, message: str
) -> None:
    # The file is read before the database is opened, so no node is needed.
    path = cli.data_dir.parent / "input-file-with-a-rather-long-name-to-see-how-lines-wrap.json"
    if content is not None:
        path.write_bytes(content)
    line = cli.fails("import", str(path))
    assert message in line
    if content is None:
        assert str(path) in line


def test_export_round_trips_what_was_imported(ready: Cli) -> None:
    objects = [
        indicator("198.51.100.1", x_acme_score=97.5),
        indicator("evil.example.com", kind="domain-name"),
        {
            "type": "x-acme-widget",
            "spec_version": "2.1",
            "id": stix_id("x-acme-widget"),
            "created": "2026-01-01T00:00:00Z",
            "modified": "2026-01-01T00:00:00Z",
            "x_acme_parts": [{"name": "Қалқан", "weight": 1.25}],
        },
    ]
    source = ready.data_dir.parent / "in.json"
    source.write_bytes(orjson.dumps(bundle(*objects)))
    ready.ok("import", str(source))

    out = ready.data_dir.parent / "out.json"
    result = ready.ok("export", "--format", "stix", "-o", str(out))
    assert str(out) in result.stderr
    assert not out.with_name(out.name + ".part").exists()
    exported = orjson.loads(out.read_bytes())
    assert exported["type"] == "bundle"
    assert exported["id"].startswith("bundle--")
    by_id = {o["id"]: o for o in exported["objects"]}
    for obj in objects:
        assert by_id[obj["id"]] == obj
    # The node's own objects come along: the first org's identity and the TLP markings.
    assert ready.init["org"]["identity_id"] in by_id
    assert TLP.RED.marking_id in by_id

    only = orjson.loads(ready.ok("export", "--type", "indicator").stdout)
    assert {o["id"] for o in only["objects"]} == {objects[0]["id"], objects[1]["id"]}


# --- demo -----------------------------------------------------------------------------------


def test_demo_creates_a_complete_demo_node(cli: Cli) -> None:
    result = cli.ok("demo", "--no-serve")
    assert "demo node ready" in result.stdout

    keys_file = cli.data_dir / "demo-keys.txt"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    keys = dict(line.split("\t") for line in keys_file.read_text().splitlines())
    assert all(k.startswith("qk_") for k in keys.values())

    with cli.database() as conn:
        orgs = store.list_orgs(conn)
        users = store.list_users(conn)
        groups = store.list_groups(conn)
        handled = set(
            conn.execute(
                select(object_versions.c.tlp, object_versions.c.distribution).distinct()
            ).all()
        )
    assert len(orgs) >= 4
    assert len({o.country for o in orgs}) == len(orgs)
    assert {u.role for u in users} == {r.value for r in Role}
    for org in orgs:
        assert {u.role for u in users if u.org_id == org.id} >= {
            r.value for r in Role if r is not Role.NODE_ADMIN
        }
    assert set(keys) == {u.email for u in users}

    assert len(groups) == 1
    assert len(groups[0].member_org_ids) >= 2
    allowed = {
        (int(tlp), distribution.value)
        for tlp in TLP
        for distribution in Distribution
        if handling_problem(
            tlp,
            distribution,
            groups[0].id if distribution is Distribution.SHARING_GROUP else None,
        )
        is None
    }
    assert allowed <= handled

    reader = next(u.email for u in users if u.role == Role.READER)
    with cli.api() as client:
        me = client.get("/api/v1/me", headers=bearer(keys[reader]))
    assert me.status_code == 200
    assert me.json()["role"] == "reader"


def test_demo_refuses_to_wipe_a_directory_that_is_not_a_data_dir(cli: Cli) -> None:
    cli.data_dir.mkdir()
    precious = cli.data_dir / "notes.txt"
    precious.write_text("keep me")
    assert "not a Qalqan data dir" in cli.fails("demo", "--no-serve")
    assert precious.read_text() == "keep me"


def test_audit_list_shows_who_did_what(ready: Cli) -> None:
    ready.ok("org", "add", "CERT-TJ", "--country", "TJ")
    entries = ready.json("audit", "list", "--limit", "100")
    actions = [e["action"] for e in entries]
    assert actions[0] == "objects.import"  # the new org's identity, newest first
    assert {"node.init", "org.add", "user.add", "key.create"} <= set(actions)
    assert entries == sorted(entries, key=lambda e: e["id"], reverse=True)
    assert ready.init["api_key"] not in str(entries)
    assert "CERT-TJ" in ready.ok("audit", "list").stdout


def test_user_disable_and_enable(ready: Cli) -> None:
    ready.ok("user", "add", "soc@local.test", "--org", "Local-CERT")
    key = ready.json("key", "create", "--user", "soc@local.test")["key"]
    assert "disabled soc@local.test" in ready.ok("user", "disable", "soc@local.test").stdout
    with ready.api() as client:
        assert client.get("/api/v1/me", headers=bearer(key)).status_code == 401
    ready.ok("user", "enable", "soc@local.test")
    with ready.api() as client:
        assert client.get("/api/v1/me", headers=bearer(key)).status_code == 200
    assert "nobody@local.test" in ready.fails("user", "disable", "nobody@local.test")


def test_import_reads_standard_input(ready: Cli) -> None:
    obj = indicator("198.51.100.90")
    result = subprocess.run(
        [str(QALQAN), "import", "-", "--tlp", "green", "--distribution", "node", "--json"],
        input=orjson.dumps(bundle(obj)).decode(),
        env=ready.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    assert (report["created"], report["rejected"]) == (1, 0)
