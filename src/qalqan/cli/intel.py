"""``qalqan import`` and ``qalqan export``: STIX 2.1 bundles in and out."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qalqan.cli.common import (
    JsonOption,
    console,
    err_console,
    org_principal,
    print_json,
    transaction,
)
from qalqan.domain.handling import TLP, Distribution
from qalqan.errors import InvalidInput, parse_field
from qalqan.intel.importer import HandlingRequest, import_objects, load_document, objects_of
from qalqan.intel.reading import stream_bundle
from qalqan.store.objects import ObjectFilter

__all__ = ["export_command", "import_command"]

_SHOWN_ERRORS = 20


def _read_document(path: Path) -> object:
    if str(path) == "-":
        data = sys.stdin.buffer.read()
    else:
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file", field="file")
        data = path.read_bytes()
    return load_document(data, str(path))


def import_command(
    file: Path = typer.Argument(..., help="A STIX 2.1 bundle (JSON), or - for stdin."),
    org: str | None = typer.Option(
        None, "--org", "-o", help="Submit as this org (default: first)."
    ),
    tlp: str | None = typer.Option(None, help="TLP: clear, green, amber, amber+strict, red."),
    distribution: str | None = typer.Option(
        None, help="organization, node, connected, all or sharing_group."
    ),
    sharing_group: str | None = typer.Option(None, help="Sharing group name or id."),
    json_out: bool = JsonOption,
) -> None:
    """Import a STIX 2.1 bundle; each object is accepted or rejected with a reason."""
    objects = objects_of(_read_document(file))
    handling = HandlingRequest(
        parse_field("tlp", TLP.parse, tlp),
        parse_field("distribution", Distribution.parse, distribution),
        sharing_group,
    )
    with (
        transaction() as conn,
        Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            disable=json_out or not err_console.is_terminal,
        ) as bar,
    ):
        task = bar.add_task("import", total=len(objects))
        principal = org_principal(conn, org)
        report = import_objects(
            conn,
            principal,
            objects,
            handling,
            source="cli",
            progress=lambda n: bar.advance(task, n),
        )
    if json_out:
        print_json(report.to_dict())
    else:
        summary = report.to_dict()
        console.print(
            f"{summary['accepted']} accepted ({summary['created']} new, "
            f"{summary['unchanged']} unchanged), {summary['rejected']} rejected"
        )
        if report.rejected:
            table = Table("index", "id", "field", "reason", header_style="bold")
            for r in report.rejected[:_SHOWN_ERRORS]:
                table.add_row(str(r.index), r.id or "", r.field or "", r.reason)
            console.print(table)
            if len(report.rejected) > _SHOWN_ERRORS:
                console.print(f"... and {len(report.rejected) - _SHOWN_ERRORS} more (see --json)")
    if report.rejected and not report.accepted:
        raise typer.Exit(1)


class ExportFormat(StrEnum):
    STIX = "stix"


def export_command(
    format: ExportFormat = typer.Option(ExportFormat.STIX, "--format", "-f", help="Output format."),
    org: str | None = typer.Option(None, "--org", help="Export what this org may see."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default: stdout)."
    ),
    type_: list[str] = typer.Option([], "--type", "-t", help="Only these STIX types (repeat)."),
    max_tlp: str | None = typer.Option(None, help="Only objects up to this TLP."),
    include_revoked: bool = typer.Option(True, help="Include objects whose creator revoked them."),
) -> None:
    """Export the latest version of every object the org may see, as a STIX 2.1 bundle."""
    ceiling = parse_field("max-tlp", TLP.parse, max_tlp)
    f = ObjectFilter(
        types=type_ or None,
        max_tlp=int(ceiling) if ceiling is not None else None,
        include_revoked=include_revoked,
    )
    with transaction() as conn:
        principal = org_principal(conn, org)
        if output is None:
            for chunk in stream_bundle(conn, principal, f):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        tmp = output.with_name(output.name + ".part")
        with tmp.open("wb") as fh:
            for chunk in stream_bundle(conn, principal, f):
                fh.write(chunk)
        tmp.replace(output)
    err_console.print(f"wrote {output}")
