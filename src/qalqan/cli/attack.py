"""``qalqan attack``: import MITRE ATT&CK bundles as reference data; list techniques with the
intelligence and sightings linked to them."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qalqan.api.analysis_schemas import TechniqueDetailPublic, TechniquePagePublic
from qalqan.cli.common import (
    JsonOption,
    console,
    err_console,
    org_principal,
    print_json,
    transaction,
)
from qalqan.domain.handling import Distribution
from qalqan.errors import InvalidInput, parse_field
from qalqan.intel import attack
from qalqan.intel.importer import load_document, objects_of
from qalqan.intel.periods import parse_period
from qalqan.store.clock import now_us

__all__ = ["attack_app"]

attack_app = typer.Typer(
    help="MITRE ATT&CK: reference data, and techniques seen in the intelligence.",
    no_args_is_help=True,
)

_SHOWN_ERRORS = 10


@attack_app.command("import")
def import_command(
    files: list[Path] = typer.Argument(..., help="ATT&CK STIX 2.1 bundles (enterprise, ...)."),
    org: str | None = typer.Option(
        None, "--org", "-o", help="The org that holds the reference data (default: first)."
    ),
    distribution: str = typer.Option("node", help="node, connected or all."),
    json_out: bool = JsonOption,
) -> None:
    """Import ATT&CK bundles at TLP:CLEAR for every org; importing one again changes nothing,
    a newer release adds newer versions. Import every release as the same org."""
    spread = parse_field("distribution", Distribution.parse, distribution)
    results = []
    for path in files:
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file", field="file")
        objects = objects_of(load_document(path.read_bytes(), str(path)))
        with (
            transaction() as conn,
            Progress(
                TextColumn(f"importing {path.name}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                disable=json_out or not err_console.is_terminal,
            ) as bar,
        ):
            task = bar.add_task("import", total=len(objects))
            result = attack.import_attack(
                conn,
                org_principal(conn, org),
                objects,
                name=path.name,
                distribution=spread,
                progress=partial(bar.advance, task),
            )
        results.append(result.to_dict())
        if not json_out:
            _print_import(results[-1])
    if json_out:
        print_json({"files": results})


def _print_import(summary: dict[str, object]) -> None:
    title = " ".join(str(summary[k]) for k in ("collection", "version") if summary[k])
    console.print(
        f"{summary['file']}{f' ({title})' if title else ''}: {summary['accepted']} accepted "
        f"({summary['created']} new, {summary['unchanged']} unchanged), "
        f"{summary['rejected']} rejected"
    )
    console.print(
        ", ".join(
            f"{summary[k]} {k}"
            for k in ("techniques", "tactics", "groups", "software", "campaigns", "relationships")
        )
    )
    errors = summary["errors"]
    assert isinstance(errors, list)
    for error in errors[:_SHOWN_ERRORS]:
        console.print(
            f"  object {error['index']} ({error['id']}) {error['field']}: {error['reason']}"
        )


@attack_app.command("techniques")
def techniques_command(
    attack_id: str | None = typer.Argument(None, help="One technique (e.g. T0800) in detail."),
    org: str | None = typer.Option(None, "--org", "-o", help="Count what this org may see."),
    since: str | None = typer.Option(None, help="From: ISO time or date, or 7d, 24h, ..."),
    until: str | None = typer.Option(None, help="Until (default now)."),
    member: str | None = typer.Option(None, help="Only this org's intelligence and sightings."),
    country: str | None = typer.Option(None, help="Only orgs of this country (ISO code)."),
    domain: str | None = typer.Option(None, help="enterprise, mobile or ics."),
    tactic: str | None = typer.Option(None, help="Only techniques of this tactic."),
    by_org: bool = typer.Option(False, "--by-org", help="Counts per org too."),
    rollup: bool = typer.Option(False, help="Count sub-techniques into their parent."),
    all_: bool = typer.Option(False, "--all", help="Also techniques with nothing counted."),
    sort: str = typer.Option("intelligence", help="intelligence, sightings or attack_id."),
    limit: int = typer.Option(20, min=1, max=1000, help="How many (the top ones)."),
    json_out: bool = JsonOption,
) -> None:
    """The top techniques in the intelligence the org may see, or one technique with its
    linked intelligence."""
    period = None
    if since is not None or until is not None:
        period = parse_period(since, until, now=now_us(), default_days=None, max_days=None)
    f = attack.TechniqueFilter(
        period=period,
        org=member,
        country=country,
        domain=parse_field("domain", attack.parse_domain, domain),
        tactic=tactic,
        rollup=rollup,
        by_org=by_org,
        include_zero=all_,
        include_deprecated=attack_id is not None,
    )
    with transaction() as conn:
        principal = org_principal(conn, org)
        if attack_id is not None:
            detail = TechniqueDetailPublic.of(
                attack.show_technique(conn, principal, attack_id, f, limit=limit)
            )
        else:
            page = TechniquePagePublic.of(
                attack.list_techniques(conn, principal, f, sort=sort, limit=limit)
            )
    if attack_id is not None:
        if json_out:
            print_json(detail.model_dump(mode="json"))
            return
        t = detail.technique
        console.print(f"{t.attack_id} {t.name} ({', '.join(t.tactics)})")
        console.print(
            f"{t.intelligence} linked objects, {t.sightings} sighted "
            f"({t.sighting_reports} sightings)"
        )
        for linked in detail.items:
            console.print(f"  {linked.type} {linked.id} {linked.object.get('name', '')}")
        return
    if json_out:
        print_json(page.model_dump(mode="json"))
        return
    table = Table("technique", "name", "tactics", "intelligence", "sightings", header_style="bold")
    for item in page.items:
        table.add_row(
            item.attack_id,
            item.name,
            ", ".join(item.tactics),
            str(item.intelligence),
            str(item.sightings),
        )
    console.print(table)
