"""``qalqan audit verify`` and ``qalqan audit export``: the chain checked from the command line,
a hand-made change reported with its position, and a signed extract that verifies."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from qalqan import audit

from .test_cli import Cli


def test_verify_reports_a_tampered_entry_and_export_is_signed(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    cli.json("init")
    cli.ok("org", "add", "CERT-B", "--country", "UZ")
    assert "audit chain intact" in cli.ok("audit", "verify").stdout
    out = tmp_path / "audit.jsonl"
    cli.ok("audit", "export", "--since", "1d", "-o", str(out))
    lines = out.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 3
    assert audit.verify_extract(lines) is None
    assert "since" in cli.fails("audit", "export", "--since", "yesterday-ish")
    with sqlite3.connect(cli.data_dir / "qalqan.db") as db:
        db.execute("UPDATE audit_log SET detail = detail || 'x' WHERE id = 2")
    assert "audit chain broken at entry 2 (position 2" in cli.fails("audit", "verify")
    result = cli("audit", "verify", "--json")
    assert result.returncode == 1
    assert orjson.loads(result.stdout)["broken_at"] == 2
