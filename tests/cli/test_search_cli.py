"""``qalqan search``: one query string, as a table or JSON, as the named org may see."""

from __future__ import annotations

from pathlib import Path

import orjson

from qalqan.testing import bundle, indicator

from .test_cli import Cli


def test_search_finds_values_networks_suffixes_and_words(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    cli.json("init")
    cli.ok("org", "add", "CERT-B", "--country", "UZ")
    source = tmp_path / "in.json"
    objects = [
        indicator("login.evil.example", kind="domain-name", name="Bank phishing kit"),
        indicator("203.0.113.9", name="Botnet controller"),
    ]
    source.write_bytes(orjson.dumps(bundle(*objects)))
    cli.ok("import", str(source), "--distribution", "organization")
    by_network = cli.json("search", "203.0.113.0/24", "--json")
    assert [item["id"] for item in by_network["items"]] == [objects[1]["id"]]
    by_suffix = cli.json("search", "*.evil.example", "--json")
    assert [item["id"] for item in by_suffix["items"]] == [objects[0]["id"]]
    assert cli.json("search", "phishing", "--json")["items"][0]["id"] == objects[0]["id"]
    assert cli.json("search", "phishing", "--org", "CERT-B", "--json")["items"] == []
    assert (
        "exact search for login.evil.example: 1 hits"
        in cli.ok("search", "login.evil[.]example").stdout
    )
    assert "mode" in cli.fails("search", "x", "--mode", "bogus")
