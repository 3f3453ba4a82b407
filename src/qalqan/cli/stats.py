"""``qalqan stats``: what dashboards show, on the command line: objects and sightings per day,
org, country, type, TLP or kind; the most named values; the health of feeds."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from qalqan.api.analysis_schemas import (
    FeedHealthList,
    ObjectStatsPage,
    SightingStatsPage,
    TopValuesPage,
)
from qalqan.cli.common import JsonOption, console, org_principal, print_json, transaction
from qalqan.intel import stats
from qalqan.intel.periods import parse_period
from qalqan.store.clock import now_us

__all__ = ["stats_app"]

stats_app = typer.Typer(
    help="Statistics: objects, sightings, top values, feeds' health.", no_args_is_help=True
)

_ORG_HELP = "Count what this org may see (default: first)."
_SINCE_HELP = "From: ISO time or date, or 7d, 24h, ... (default 30d; at most 366 days)."


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    table = Table(*columns, header_style="bold")
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            cells.append(value["name"] if isinstance(value, dict) else str(value))
        table.add_row(*cells)
    console.print(table)


@stats_app.command("objects")
def objects_command(
    by: str = typer.Option("day", help="Any of day, org, country, type, tlp (comma list)."),
    since: str | None = typer.Option(None, help=_SINCE_HELP),
    until: str | None = typer.Option(None, help="Until (default now)."),
    org: str | None = typer.Option(None, "--org", "-o", help=_ORG_HELP),
    json_out: bool = JsonOption,
) -> None:
    """Objects and versions added, grouped."""
    period = parse_period(since, until, now=now_us())
    dims = stats.parse_dimensions(by, stats.OBJECT_DIMENSIONS)
    with transaction() as conn:
        result = ObjectStatsPage.of(
            stats.object_stats(conn, org_principal(conn, org), period, dims)
        )
    if json_out:
        print_json(result.model_dump(mode="json"))
        return
    _table([r.model_dump() for r in result.rows], [*dims, "objects", "versions"])
    console.print(f"{result.objects} objects, {result.versions} versions")


@stats_app.command("sightings")
def sightings_command(
    by: str = typer.Option("day", help="Any of day, org, country, kind (comma list)."),
    since: str | None = typer.Option(None, help=_SINCE_HELP),
    until: str | None = typer.Option(None, help="Until (default now)."),
    org: str | None = typer.Option(None, "--org", "-o", help=_ORG_HELP),
    json_out: bool = JsonOption,
) -> None:
    """Sightings and the sum of their counts, grouped."""
    period = parse_period(since, until, now=now_us())
    dims = stats.parse_dimensions(by, stats.SIGHTING_DIMENSIONS)
    with transaction() as conn:
        result = SightingStatsPage.of(
            stats.sighting_stats(conn, org_principal(conn, org), period, dims)
        )
    if json_out:
        print_json(result.model_dump(mode="json"))
        return
    _table([r.model_dump() for r in result.rows], [*dims, "sightings", "count"])
    console.print(f"{result.sightings} sightings, count {result.count}")


@stats_app.command("top-values")
def top_values_command(
    kind: list[str] = typer.Option([], "--kind", "-k", help="Only these kinds (repeat)."),
    limit: int = typer.Option(20, min=1, max=stats.MAX_TOP_VALUES),
    min_objects: int = typer.Option(
        2, min=1, max=stats.MAX_MIN_OBJECTS, help="Named by at least this many objects."
    ),
    include_warninglisted: bool = typer.Option(False, help="Also values on a warninglist."),
    since: str | None = typer.Option(None, help=_SINCE_HELP),
    until: str | None = typer.Option(None, help="Until (default now)."),
    org: str | None = typer.Option(None, "--org", "-o", help=_ORG_HELP),
    json_out: bool = JsonOption,
) -> None:
    """The values named by the most objects added in the period."""
    period = parse_period(since, until, now=now_us())
    with transaction() as conn:
        values = stats.top_values(
            conn,
            org_principal(conn, org),
            period,
            kinds=kind,
            limit=limit,
            min_objects=min_objects,
            include_warninglisted=include_warninglisted,
        )
    result = TopValuesPage.of(period, values)
    if json_out:
        print_json(result.model_dump(mode="json"))
        return
    _table([v.model_dump() for v in result.items], ["kind", "value", "objects", "orgs"])


@stats_app.command("feeds")
def feeds_command(
    org: str | None = typer.Option(None, "--org", "-o", help="As this org (default: first)."),
    json_out: bool = JsonOption,
) -> None:
    """Feeds' health: last run, failures in a row, stale or healthy."""
    with transaction() as conn:
        result = FeedHealthList.of(stats.feed_health(conn, org_principal(conn, org), now=now_us()))
    if json_out:
        print_json(result.model_dump(mode="json"))
        return
    rows = [
        {
            "name": h.name,
            "status": h.status,
            "last run": h.last_run.started if h.last_run else "-",
            "last success": h.last_success or "-",
            "failures in a row": h.failures_in_a_row,
        }
        for h in result.items
    ]
    _table(rows, ["name", "status", "last run", "last success", "failures in a row"])
