"""``qalqan search``: one query over observable values, networks, domain suffixes, prefixes and
full text, as an org may see it (see ``intel.search``)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from qalqan.cli.common import JsonOption, console, org_principal, print_json, transaction
from qalqan.intel import search as service

__all__ = ["search_app"]

search_app = typer.Typer(
    help="Search values, networks, domain suffixes, prefixes and text.",
    no_args_is_help=True,
    subcommand_metavar="",
    # Options may follow the query: `qalqan search 10.0.0.0/8 --type indicator`.
    context_settings={"allow_interspersed_args": True},
)


@search_app.callback(invoke_without_command=True)
def search_command(
    query: str = typer.Argument(
        ...,
        metavar="QUERY",
        help="A value (defanged is fine), a CIDR, *.domain, prefix* or words.",
    ),
    mode: str = typer.Option(
        "auto", "--mode", "-m", help="auto, exact, cidr, suffix, prefix or text."
    ),
    type_: list[str] = typer.Option([], "--type", "-t", help="Only these STIX types (repeat)."),
    owner: list[str] = typer.Option([], "--owner", help="Only objects of this org (id or name)."),
    country: list[str] = typer.Option([], "--country", help="Only objects of orgs of a country."),
    tlp: list[str] = typer.Option([], "--tlp", help="Only these TLP levels (repeat)."),
    label: list[str] = typer.Option([], "--label", help="Only objects with this label (repeat)."),
    score: list[str] = typer.Option([], "--score", help="Score band: low, medium, high, none."),
    facets: bool = typer.Option(False, "--facets", help="Count matches by type, org, TLP, ..."),
    cursor: str | None = typer.Option(None, "--cursor", help="The `next` of a previous page."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=1000, help="Hits per page."),
    org: str | None = typer.Option(
        None, "--org", "-o", help="Search as this org (default: first)."
    ),
    json_out: bool = JsonOption,
) -> None:
    """Search what the org may see: `1.2.3.4`, `hxxp://evil[.]example`, `203.0.113.0/24`,
    `*.example.com`, `abc*` or words (full text over names, descriptions and labels)."""
    request = service.SearchRequest(
        query,
        mode,
        types=type_,
        orgs=owner,
        countries=country,
        tlps=tlp,
        labels=label,
        scores=score,
        cursor=cursor,
        limit=limit,
        facets=facets,
    )
    with transaction() as conn:
        principal = org_principal(conn, org)
        result = service.search(conn, principal, request)
    shown = service.result_dict(result)
    if json_out:
        print_json(shown)
        return
    _print(shown)


def _print(shown: dict[str, Any]) -> None:
    query, items = shown["query"], shown["items"]
    about = query["value"] or " ".join(query["terms"] or ()) or query["q"]
    console.print(f"{query['mode']} search for {about}: {len(items)} hits")
    if items:
        table = Table("id", "type", "name", "matched", "owner", "tlp", "score", header_style="bold")
        for item in items:
            matched = item["matched"]
            table.add_row(
                item["id"],
                item["type"],
                item["name"] or "",
                f"{matched['kind']} {matched['value']}" if matched else "",
                item["handling"]["owner_org"]["name"],
                item["handling"]["tlp"],
                "" if item["score"] is None else str(item["score"]),
            )
        console.print(table)
    facets = shown["facets"]
    if facets is not None:
        counted = f"{facets['objects']} objects" + ("" if facets["exact"] else " (capped)")
        console.print(f"facets over {counted}:")
        for name in ("type", "country", "tlp", "score", "label"):
            values = ", ".join(f"{v['value']} {v['count']}" for v in facets[name])
            console.print(f"  {name}: {values or '-'}")
        orgs = ", ".join(f"{o['name']} ({o['country']}) {o['count']}" for o in facets["org"])
        console.print(f"  org: {orgs or '-'}")
    if shown["next"]:
        console.print(f"more: --cursor {shown['next']}")
