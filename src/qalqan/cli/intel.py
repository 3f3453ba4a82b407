"""``qalqan import`` and ``qalqan export``: STIX 2.1 bundles in; bundles and detection exports
out."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
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
from qalqan.interop.exports import object_link, parse_request, prepare, write_files
from qalqan.settings import Settings

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


_FORMAT_HELP = "stix, suricata, snort, zeek, rpz, misp, csv or text."


def export_command(
    format: str = typer.Option("stix", "--format", "-f", help=_FORMAT_HELP),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default: stdout); side files go beside it."
    ),
    org: str | None = typer.Option(None, "--org", help="Export what this org may see."),
    type_: list[str] = typer.Option(
        [], "--type", "-t", help="stix: only these STIX types; others: as --kind (repeat)."
    ),
    kind: list[str] = typer.Option(
        [], "--kind", "-k", help="Only these observable kinds: ip, cidr, domain, url, ... (repeat)."
    ),
    max_tlp: str | None = typer.Option(
        None, "--max-tlp", help="TLP ceiling (detection formats: default green; red never)."
    ),
    min_confidence: str | None = typer.Option(
        None, "--min-confidence", help="Confidence floor 0-100 (default: the node's setting)."
    ),
    since: str | None = typer.Option(None, "--since", help="Only what was added since (RFC 3339)."),
    feed: list[str] = typer.Option([], "--feed", help="Only what this feed made (repeat)."),
    label: list[str] = typer.Option([], "--label", help="Only objects with this label (repeat)."),
    json_out: bool = typer.Option(
        False, "--json", help="Print a summary (counts, skipped values) as JSON; needs -o."
    ),
) -> None:
    """Export what the org may see: a STIX 2.1 bundle, or the active indicators as detection
    rules and lists (Suricata, Snort, Zeek Intel, DNS RPZ, MISP event, CSV, plain text)."""
    request = parse_request(
        format,
        kinds=kind,
        types=type_,
        max_tlp=max_tlp,
        min_confidence=min_confidence,
        since=since,
        feeds=feed,
        labels=label,
    )
    if output is None and (json_out or request.format.has_side_files):
        why = "--json prints to stdout" if json_out else f"{request.format.name} writes side files"
        raise InvalidInput(f"output: {why}; give -o FILE", field="output")
    if output is not None and not output.parent.is_dir():
        raise InvalidInput(f"output: {output.parent} is not a directory", field="output")
    settings = Settings()
    with (
        transaction() as conn,
        Progress(
            SpinnerColumn(),
            TextColumn("exporting {task.completed:,} values"),
            TimeElapsedColumn(),
            console=err_console,
            disable=json_out or output is None or not err_console.is_terminal,
        ) as bar,
    ):
        principal = org_principal(conn, org)
        export = prepare(
            conn,
            principal,
            request,
            default_min_confidence=settings.export_min_confidence,
            object_url=object_link(settings.export_link_base),
            output_name=output.name if output is not None else None,
        )
        task = bar.add_task("export", total=None)
        if output is None:
            for _, data in export.chunks(conn):
                sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            export.audit(conn)
            return
        written = write_files(
            export,
            conn,
            output,
            progress=lambda: bar.update(task, completed=sum(export.selected.values())),
        )
        export.audit(conn)
    summary = export.summary()
    if json_out:
        print_json({**summary, "files": [str(p) for p in written]})
        return
    skipped = sum(summary["skipped"].values())
    unit = "objects" if request.format.kinds is None else "values"
    err_console.print(
        f"wrote {output}: {summary['written']} {unit}"
        + (f", {skipped} skipped ({_reasons(summary['skipped'])})" if skipped else "")
        + (f", {len(written) - 1} side files" if len(written) > 1 else "")
    )


def _reasons(skipped: dict[str, int]) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in skipped.items())
