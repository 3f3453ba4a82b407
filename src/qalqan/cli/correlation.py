"""``qalqan related``: who else reported or sighted a value, as an org may know it."""

from __future__ import annotations

import typer
from rich.table import Table

from qalqan.api.correlation_schemas import related_body
from qalqan.cli.common import JsonOption, console, open_instance, org_principal, print_json
from qalqan.intel import correlation

__all__ = ["related_command"]


def related_command(
    value: str = typer.Argument(..., help="The value; defanged is fine (hxxp, [.])."),
    type_: str = typer.Option(
        "",
        "--type",
        "-t",
        help="ipv4-addr, domain-name, url, email-addr, file, or a kind (ip, cidr, sha256, ...); "
        "default: guessed from the value.",
    ),
    org: str | None = typer.Option(None, "--org", help="Answer as this org may know it."),
    limit: int = typer.Option(20, min=1, max=1000, help="How many related objects to list."),
    json_out: bool = JsonOption,
) -> None:
    """Which orgs and countries reported the value or a related one (networks around an
    address, parent and child domains, a URL's host), when, and who sighted it."""
    instance = open_instance()
    try:
        with instance.begin() as conn:
            principal = org_principal(conn, org)
            wanted = correlation.parse_lookup(type_, value) if type_ else correlation.guess(value)
            found = correlation.related(
                conn,
                principal,
                wanted,
                list_limit=instance.settings.correlation_list_limit,
                limit=limit,
            )
    finally:
        instance.close()
    body = related_body(found)
    if json_out:
        print_json(body)
        return
    head = f"{found.value.kind} {found.value.value}: {found.total} related objects"
    if found.over_correlating:
        head += f" (over-correlating: more than {found.list_limit}, summarized)"
    console.print(head)
    if found.relations:
        console.print(", ".join(f"{name} {n}" for name, n in sorted(found.relations.items())))
    if body["orgs"]:
        orgs = Table("org", "country", "objects", "first added", "last added")
        for o in body["orgs"]:
            orgs.add_row(o["org"]["name"], o["org"]["country"], str(o["objects"]),
                         o["first_added"], o["last_added"])  # fmt: skip
        console.print(orgs)
    if body["sightings"]:
        seen = Table("sighted by", "country", "kind", "sightings", "count", "last seen")
        for s in body["sightings"]:
            seen.add_row(s["org"]["name"], s["org"]["country"], s["kind"], str(s["sightings"]),
                         str(s["count"]), s["last_seen"] or "")  # fmt: skip
        console.print(seen)
    if body["items"]:
        items = Table("id", "type", "name", "relation", "matched", "owner", "tlp")
        for h in body["items"]:
            items.add_row(h["id"], h["type"], h["name"] or "", h["relation"],
                          h["matched"]["value"], h["owner_org"]["name"], h["tlp"])  # fmt: skip
        console.print(items)
