"""``qalqan export``: every format to a file (side files beside it, nothing half-written),
summaries for scripts, and one clear line for every bad option."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from qalqan.testing import bundle, indicator

from .test_cli import Cli


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A node with a few green indicators of every kind, imported once."""
    cli = Cli(tmp_path_factory.mktemp("export-template") / "data")
    cli.init = cli.json("init")
    objects = [
        indicator("evil.example", kind="domain-name", name='C2 "panel"; alert'),
        indicator("198.51.100.7", name="=cmd|' /C calc'!A0"),
        indicator("44d88612fea8a8f36de82e1278abb02f", kind="MD5"),
        indicator("phish@evil.example", kind="email-addr"),
        indicator("red.example", kind="domain-name"),
    ]
    source = cli.data_dir.parent / "in.json"
    source.write_bytes(orjson.dumps(bundle(*objects[:4])))
    cli.ok("import", str(source), "--tlp", "green", "--distribution", "node")
    source.write_bytes(orjson.dumps(bundle(objects[4])))
    cli.ok("import", str(source), "--tlp", "red", "--distribution", "organization")
    return cli


@pytest.fixture
def node(loaded: Cli, tmp_path: Path) -> Cli:
    copy = Cli(tmp_path / "data", init=loaded.init)
    shutil.copytree(loaded.data_dir, copy.data_dir)
    return copy


@pytest.mark.parametrize("fmt", ["suricata", "snort", "zeek", "rpz", "misp", "csv", "text", "stix"])
def test_every_format_writes_its_file(node: Cli, fmt: str) -> None:
    out = node.data_dir.parent / f"out.{fmt}"
    result = node.ok("export", "--format", fmt, "-o", str(out))
    assert f"wrote {out}" in result.stderr
    assert out.stat().st_size > 0
    assert not list(out.parent.glob("*.part"))
    data = out.read_bytes()
    if fmt != "stix":
        # RED never leaves by export, even the owner's own.
        assert b"red.example" not in data


def test_suricata_writes_datasets_beside_the_rules(node: Cli) -> None:
    out = node.data_dir.parent / "sensor.rules"
    summary = node.json("export", "--format", "suricata", "-o", str(out))
    files = {Path(p).name for p in summary["files"]}
    assert files == {"sensor.rules", "sensor-domains.lst", "sensor-md5.txt"}
    assert all((out.parent / name).is_file() for name in files)
    assert summary["written"] == 3
    assert summary["by_kind"] == {"domain": 1, "ip": 1, "md5": 1}
    assert "load sensor-domains.lst" in out.read_text()


def test_text_to_stdout_and_kind_filter(node: Cli) -> None:
    result = node.ok("export", "--format", "text", "--kind", "domain")
    assert result.stdout.splitlines() == ["evil.example"]
    every = node.ok("export", "--format", "text", "--max-tlp", "amber").stdout.splitlines()
    assert set(every) == {
        "evil.example",
        "198.51.100.7",
        "44d88612fea8a8f36de82e1278abb02f",
        "phish@evil.example",
    }


def test_exports_are_audited(node: Cli) -> None:
    node.ok("export", "--format", "zeek", "-o", str(node.data_dir.parent / "z.intel"))
    entries = node.json("audit", "list", "--limit", "5")
    actions = [
        e.get("action") for e in (entries if isinstance(entries, list) else entries["items"])
    ]
    assert "export.zeek" in actions


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "excel"], "unknown export format 'excel'"),
        (["--format", "zeek", "--max-tlp", "purple"], "max_tlp"),
        (["--format", "zeek", "--max-tlp", "red"], "RED never leaves by export"),
        (["--format", "csv", "--min-confidence", "high"], "min_confidence"),
        (["--format", "csv", "--min-confidence", "101"], "min_confidence"),
        (["--format", "text", "--feed", "no-such-feed"], "no feed 'no-such-feed'"),
        (["--format", "text", "--since", "last tuesday"], "since"),
        (["--format", "rpz", "--kind", "ip"], "rpz cannot express ip"),
        (["--format", "suricata"], "give -o FILE"),
        (["--format", "text", "--json"], "give -o FILE"),
        (["--format", "text", "-o", "/no/such/dir/x.txt"], "is not a directory"),
    ],
)
def test_bad_options_fail_with_one_line(node: Cli, args: list[str], message: str) -> None:
    line = node.fails("export", *args)
    assert message in line
