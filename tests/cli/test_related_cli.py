"""``qalqan related``: a value's correlations as an org may know them, as a table or JSON."""

from __future__ import annotations

from pathlib import Path

import orjson

from qalqan.testing import bundle, indicator

from .test_cli import Cli


def test_related_answers_as_the_named_org(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    cli.json("init")
    cli.ok("org", "add", "CERT-B", "--country", "UZ")
    source = tmp_path / "in.json"
    source.write_bytes(orjson.dumps(bundle(indicator("evil.example", kind="domain-name"))))
    cli.ok("import", str(source), "--distribution", "organization")
    mine = cli.json("related", "www.evil[.]example", "--json")
    assert mine["relations"] == {"parent": 1}
    assert mine["items"][0]["matched"] == {"kind": "domain", "value": "evil.example"}
    theirs = cli.json("related", "www.evil[.]example", "--org", "CERT-B", "--json")
    assert theirs["total"] == 0
    assert "parent 1" in cli.ok("related", "www.evil.example").stdout
    assert "cannot tell what kind" in cli.fails("related", "zzz")
    assert "not a ipv4-addr value" in cli.fails("related", "evil.example", "--type", "ipv4-addr")
