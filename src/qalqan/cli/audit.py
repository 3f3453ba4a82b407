"""``qalqan audit``: read the node's audit log."""

from __future__ import annotations

import orjson
import typer
from rich.table import Table

from qalqan.cli.common import JsonOption, console, print_json, transaction
from qalqan.domain.stix import format_timestamp
from qalqan.store.audit import recent_entries

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
