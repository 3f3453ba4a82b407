"""``qalqan sweep`` and ``qalqan watch``: match logs against the org's indicators and Sigma
rules, and report what hit."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from qalqan.cli.common import JsonOption, console, err_console, open_instance, print_json
from qalqan.cli.common import org_principal as principal_of
from qalqan.detect.matcher import parse_field_map
from qalqan.detect.sweep import SweepOptions, SweepSummary, parse_since, run_sweep, write_jsonl
from qalqan.errors import InvalidInput
from qalqan.settings import Settings

__all__ = ["sweep_command", "watch_command"]

_SHOWN = 10
_MAP_HELP = (
    "FIELD=KIND: match this event field as ip, domain, url, host, email, md5, sha1, sha256, "
    "hash or hashes (STIX names such as domain-name also work). Repeat. Default: the presets "
    "of the log format."
)
_MapOption = typer.Option([], "--map", "-m", help=_MAP_HELP)
_RulesOption = typer.Option([], "--rules", "-r", help="Sigma rule file or directory (repeat).")
_ShareOption = typer.Option(
    False, "--share", help="Release the sightings to the owners of the indicators that hit."
)
_FORMAT_HELP = "auto, jsonl, zeek, zeek-json, eve, csv, tsv, cef, leef, syslog, winevt, parquet."


def _total_bytes(paths: list[str]) -> int | None:
    total = 0
    for path in paths:
        if path == "-" or not os.path.isfile(path):
            return None
        total += os.path.getsize(path)
    return total


@contextmanager
def _output(out: Path | None) -> Iterator[IO[bytes] | None]:
    if out is None:
        yield None
    elif str(out) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
    else:
        try:
            handle = out.open("wb")
        except OSError as exc:
            raise InvalidInput(f"--out {out}: {exc.strerror or exc}", field="out") from exc
        with handle:
            yield handle


def _print_summary(summary: SweepSummary) -> None:
    names = summary.labels
    data = summary.to_dict()
    rate = data["events_per_second"]
    console.print(
        f"swept {summary.events:,} events from {len(summary.files)} file(s) in "
        f"{summary.seconds:.2f} s" + (f" ({rate:,} events/s)" if rate else "")
    )
    console.print(
        f"{summary.hits:,} hits ({summary.indicator_hits:,} on indicators, "
        f"{summary.rule_hits:,} on rules) in {summary.events_hit:,} events; "
        f"{summary.indicators:,} indicator values and {summary.rules_loaded:,} rules took part"
    )
    if summary.by_indicator:
        table = Table("indicator", "id", "hits", title="Top indicators", header_style="bold")
        for stix_id, count in sorted(summary.by_indicator.items(), key=lambda kv: -kv[1])[:_SHOWN]:
            table.add_row(names.get(stix_id, ""), stix_id, f"{count:,}")
        console.print(table)
    if summary.by_rule:
        table = Table("rule", "id", "hits", title="Top rules", header_style="bold")
        for rule_id, count in sorted(summary.by_rule.items(), key=lambda kv: -kv[1])[:_SHOWN]:
            table.add_row(names.get(rule_id, ""), rule_id, f"{count:,}")
        console.print(table)
    if summary.malformed:
        console.print(f"{summary.malformed:,} record(s) could not be read:")
        for problem in summary.problems[:_SHOWN]:
            console.print(f"  {problem['file']}:{problem['line']}: {problem['reason']}")
    if summary.rules_skipped:
        reasons: dict[str, int] = {}
        for skipped in summary.rules_skipped:
            reason = str(skipped["reason"]).split(":")[0]
            reasons[reason] = reasons.get(reason, 0) + 1
        console.print(f"{len(summary.rules_skipped):,} rule(s) skipped (--json lists each):")
        for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:_SHOWN]:
            console.print(f"  {count:,}: {reason}")
    for file, fields in summary.missing_fields.items():
        console.print(f"{file}: no field {', '.join(fields)}")
    if summary.sightings:
        shared = f", {summary.sightings_shared} shared" if summary.sightings_shared else ""
        console.print(f"{summary.sightings} sighting(s) recorded{shared}")
    elif summary.sightings_note:
        console.print(f"no sightings recorded: {summary.sightings_note}")
    console.print(f"run {summary.run_id}")


def sweep_command(
    paths: list[str] = typer.Argument(..., help="Log files, directories or globs; - for stdin."),
    format: str = typer.Option("auto", "--format", "-f", help=_FORMAT_HELP),
    map_: list[str] = _MapOption,
    rules: list[Path] = _RulesOption,
    since: str | None = typer.Option(
        None, "--since", help="Skip older events: an ISO 8601 time or a duration (24h, 7d)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write every hit as JSON lines to this file (- for stdout)."
    ),
    share: bool = _ShareOption,
    min_confidence: int | None = typer.Option(
        None, "--min-confidence", min=0, max=100, help="Only indicators this confident."
    ),
    org: str | None = typer.Option(None, "--org", help="Sweep as this org (default: first)."),
    json_out: bool = JsonOption,
) -> None:
    """Sweep logs for the indicators the org may see and for Sigma rules; hits become
    sightings, the run is recorded (GET /api/v1/detections)."""
    options = SweepOptions(
        paths=paths,
        format=format,
        fields=parse_field_map(map_),
        rules=[str(r) for r in rules],
        since=_since(since),
        share=share,
        min_confidence=min_confidence,
        origin="cli",
    )
    settings = Settings()
    instance = open_instance()
    try:
        with instance.begin() as conn:
            principal = principal_of(conn, org)
        total = _total_bytes(paths)
        show_bar = not json_out and err_console.is_terminal and str(out) != "-"
        with (
            _output(out) as handle,
            Progress(
                TextColumn("sweeping"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TextColumn("{task.fields[events]:,} events ({task.fields[rate]:,.0f}/s)"),
                TimeElapsedColumn(),
                console=err_console,
                disable=not show_bar,
            ) as bar,
        ):
            task = bar.add_task("sweep", total=total, events=0, rate=0.0)

            def progress(done: int, events: int) -> None:
                elapsed = bar.tasks[0].elapsed or 0.0
                rate = events / elapsed if elapsed else 0.0
                bar.update(task, completed=done, events=events, rate=rate)

            summary = run_sweep(
                instance.engine,
                principal,
                options,
                sink=write_jsonl(handle) if handle is not None else None,
                progress=progress,
                stored_hits=settings.sweep_stored_hits,
            )
    finally:
        instance.close()
    if json_out:
        print_json(summary.to_dict())
    elif out is None or str(out) != "-":
        _print_summary(summary)


def _since(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return parse_since(text)
    except ValueError:
        raise InvalidInput(
            f"--since {text!r}: write an ISO 8601 time or a duration such as 24h", field="since"
        ) from None


def watch_command(
    path: str = typer.Argument(..., help="A log file to follow, or - for stdin."),
    format: str = typer.Option(
        "auto", "--format", "-f", help=_FORMAT_HELP + " (stdin: auto reads the first line)."
    ),
    map_: list[str] = _MapOption,
    rules: list[Path] = _RulesOption,
    from_start: bool = typer.Option(
        False, "--from-start", help="Read the file from its beginning, not only new lines."
    ),
    share: bool = _ShareOption,
    org: str | None = typer.Option(None, "--org", help="Watch as this org (default: first)."),
) -> None:
    """Follow a log as it is written and print each hit as a JSON line the moment its line is
    read. Ctrl-C (or the end of stdin) ends the run and records its sightings."""
    from qalqan.detect.follow import follow

    options = SweepOptions(
        paths=[path],
        format=format,
        fields=parse_field_map(map_),
        rules=[str(r) for r in rules],
        share=share,
        origin="watch",
    )
    settings = Settings()
    instance = open_instance()
    try:
        with instance.begin() as conn:
            principal = principal_of(conn, org)

        def emit(records: list[dict[str, Any]]) -> None:
            sys.stdout.buffer.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
            sys.stdout.buffer.flush()

        summary = follow(
            instance.engine,
            principal,
            options,
            sink=emit,
            from_start=from_start,
            stored_hits=settings.sweep_stored_hits,
        )
    finally:
        instance.close()
    err_console.print(
        f"watched {summary.events:,} events: {summary.hits:,} hits, "
        f"{summary.sightings} sighting(s) recorded; run {summary.run_id}"
    )
