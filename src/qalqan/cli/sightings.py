"""``qalqan sighting``: report a sighting, read an indicator's sighting totals, and read the
org's notifications."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from qalqan.cli.common import JsonOption, console, org_principal, print_json, transaction
from qalqan.domain.handling import TLP
from qalqan.errors import Conflict, Forbidden, InvalidInput, NotFound, PolicyViolation, parse_field
from qalqan.intel import notifications, sighting_reports
from qalqan.intel.importer import Rejection

__all__ = ["sighting_app"]

sighting_app = typer.Typer(
    help="Sightings: report them, read an indicator's totals, read notifications.",
    no_args_is_help=True,
)

_ORG = typer.Option(None, "--org", "-o", help="Act as this org (default: first).")
_ERRORS = {e.code: e for e in (InvalidInput, NotFound, Forbidden, Conflict, PolicyViolation)}


def _raise(rejection: Rejection) -> None:
    error = _ERRORS.get(rejection.code, InvalidInput)
    if error is NotFound:
        raise NotFound(rejection.reason)
    detail = f"{rejection.field}: {rejection.reason}" if rejection.field else rejection.reason
    if error is InvalidInput:
        raise InvalidInput(detail, field=rejection.field)
    raise error(detail)


@sighting_app.command("add")
def add_command(
    indicator_id: str = typer.Argument(..., help="The indicator (or other object) seen."),
    count: int = typer.Option(1, "--count", "-n", help="How many times."),
    first_seen: str | None = typer.Option(None, help="RFC 3339 (default: --last-seen)."),
    last_seen: str | None = typer.Option(None, help="RFC 3339 (default: now)."),
    kind: str = typer.Option("sighting", help="sighting, false-positive or expiration."),
    description: str | None = typer.Option(None, help="What was seen, where."),
    tlp: str | None = typer.Option(None, help="Default: the org's, at least the indicator's."),
    share: bool = typer.Option(
        True, "--share/--no-share", help="Release it to the indicator's owner (default: yes)."
    ),
    org: str | None = _ORG,
    json_out: bool = JsonOption,
) -> None:
    """Report that the org saw an indicator; its owner is told when it is shared."""
    parse_field("tlp", TLP.parse, tlp)
    report: dict[str, Any] = {
        "sighting_of_ref": indicator_id,
        "count": count,
        "kind": kind,
        "share": share,
    }
    for name, value in (
        ("first_seen", first_seen),
        ("last_seen", last_seen),
        ("description", description),
        ("tlp", tlp),
    ):
        if value is not None:
            report[name] = value
    with transaction() as conn:
        principal = org_principal(conn, org)
        result = sighting_reports.submit_sightings(conn, principal, [report], source="cli")
    if result.rejected:
        _raise(result.rejected[0])
    if json_out:
        print_json(result.to_dict())
        return
    (stored,) = result.accepted
    shared = stored.stored.recipient_org_id if stored.stored else None
    console.print(
        f"{stored.id} {stored.status}"
        + (f", shared with the owner ({shared})" if shared else ", not shared")
    )


@sighting_app.command("totals")
def totals_command(
    indicator_id: str = typer.Argument(..., help="The indicator (or other object)."),
    org: str | None = _ORG,
    json_out: bool = JsonOption,
) -> None:
    """Sightings of an indicator the org may read: totals by kind, org and country."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        totals = sighting_reports.sighting_totals(conn, principal, indicator_id, limit=100)
    data = totals.to_dict()
    if json_out:
        print_json(data)
        return
    table = Table("by", "sightings", "count", "false pos.", "expired", "last seen",
                  header_style="bold")  # fmt: skip
    rows = [("all", data["totals"])]
    rows += [(f"{o['org']['name']} ({o['org']['country']})", o["totals"]) for o in data["by_org"]]
    rows += [(c["country"], c["totals"]) for c in data["by_country"]]
    for label, kinds in rows:
        seen = kinds["sighting"]
        table.add_row(
            label,
            str(seen["reports"]),
            str(seen["count"]),
            str(kinds["false-positive"]["reports"]),
            str(kinds["expiration"]["reports"]),
            (seen["last_seen"] or "")[:19],
        )
    console.print(table)


@sighting_app.command("notifications")
def notifications_command(
    unread: bool = typer.Option(False, "--unread", help="Only those not read yet."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=1000, help="How many, newest first."),
    org: str | None = _ORG,
    json_out: bool = JsonOption,
) -> None:
    """The org's notifications (other orgs' sightings of its indicators), newest first."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        page = notifications.list_notifications(
            conn, principal, unread=True if unread else None, limit=limit
        )
    data = page.to_dict()
    if json_out:
        print_json(data)
        return
    table = Table("id", "created", "kind", "subject", "by", "count", "read", header_style="bold")
    for item in data["items"]:
        detail = item["detail"]
        by = detail.get("org", {})
        table.add_row(
            str(item["id"]),
            item["created"],
            detail.get("kind", item["kind"]),
            item["subject"] or "",
            f"{by.get('name', '')} ({by.get('country', '')})",
            str(detail.get("count", "")),
            "yes" if item["read"] else "no",
        )
    console.print(table)
