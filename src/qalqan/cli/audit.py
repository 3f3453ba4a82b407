"""``qalqan audit``: read the node's audit log, verify its hash chain, export a signed extract."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import typer
from rich.table import Table

from qalqan import audit
from qalqan.cli.common import (
    JsonOption,
    console,
    err_console,
    open_instance,
    print_json,
    transaction,
)
from qalqan.domain.stix import format_timestamp
from qalqan.errors import parse_field
from qalqan.intel.periods import parse_moment
from qalqan.store.audit import recent_entries
from qalqan.store.clock import now_us

__all__ = ["audit_app"]

audit_app = typer.Typer(help="The audit log: who did what, when.", no_args_is_help=True)


@audit_app.command("list")
def audit_list(
    limit: int = typer.Option(50, min=1, max=100_000, help="How many entries, newest first."),
    json_out: bool = JsonOption,
) -> None:
    """Show the newest audit entries."""
    with transaction() as conn:
        entries = recent_entries(conn, limit)
    rows = [
        {
            "id": e.id,
            "at": format_timestamp(e.at),
            "actor_user_id": e.actor_user_id,
            "actor_org_id": e.actor_org_id,
            "action": e.action,
            "target": e.target,
            "detail": orjson.loads(e.detail),
        }
        for e in entries
    ]
    if json_out:
        print_json(rows)
        return
    table = Table("at", "action", "actor org", "target", "detail", header_style="bold")
    for r in rows:
        detail = ", ".join(f"{k}={v}" for k, v in r["detail"].items())
        table.add_row(r["at"], r["action"], r["actor_org_id"] or "", r["target"] or "", detail)
    console.print(table)


@audit_app.command("verify")
def audit_verify(json_out: bool = JsonOption) -> None:
    """Walk the hash chain from the first entry; exit 1 and name the first broken link if an
    entry was changed, removed or reordered."""
    with transaction() as conn:
        report = audit.verify(conn)
    if json_out:
        print_json(report.to_dict())
    elif report.ok:
        console.print(f"audit chain intact: {report.checked} entries (last id {report.last_id})")
    else:
        err_console.print(
            f"error: audit chain broken at entry {report.broken_at} "
            f"(position {report.position} of the chain): {report.reason}"
        )
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    since: str | None = typer.Option(
        None, "--since", help="From this time: ISO 8601 (UTC if no zone) or back from now (7d)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default: stdout)."
    ),
) -> None:
    """Entries as JSON lines with their chain hashes, closed by a line the node's Ed25519 key
    signs (the SHA-256 of every line before it)."""
    moment = parse_field("since", lambda text: parse_moment(text, now_us()), since)
    instance = open_instance()
    try:
        with instance.begin() as conn:
            lines = audit.signed_extract(conn, instance.settings.data_dir, moment)
            if output is None:
                for line in lines:
                    sys.stdout.buffer.write(line)
                sys.stdout.flush()
                return
            partial = output.with_name(output.name + ".part")
            with partial.open("wb") as fh:
                for line in lines:
                    fh.write(line)
            partial.replace(output)
            err_console.print(f"wrote {output}")
    finally:
        instance.close()
