"""``qalqan score``: refresh the stored confidence scores of indicators, show one."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qalqan.api.score_schemas import ScoreItem
from qalqan.cli.common import (
    JsonOption,
    console,
    err_console,
    open_instance,
    org_principal,
    print_json,
)
from qalqan.intel import scoring
from qalqan.store.clock import now_us

__all__ = ["score_app"]

score_app = typer.Typer(
    help="Confidence scores of indicators: decay, sightings, false positives.",
    no_args_is_help=True,
)


@score_app.command("refresh")
def refresh_command(json_out: bool = JsonOption) -> None:
    """Recompute every stored score as of now.

    Also when each indicator leaves detection, under the current threshold and models. Only
    rows that changed are written; `qalqan serve` does this every ten minutes by itself.
    """
    instance = open_instance()
    try:
        config = scoring.config_from(instance.settings)
        with (
            Progress(
                TextColumn("refreshing scores"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                disable=json_out or not err_console.is_terminal,
            ) as bar,
            instance.begin() as conn,
        ):
            task = bar.add_task("scores", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = scoring.refresh(conn, now=now_us(), config=config, progress=advance)
    finally:
        instance.close()
    if json_out:
        print_json(report.to_dict())
        return
    console.print(
        f"refreshed {report.rows:,} scores in {report.seconds:.2f} s: {report.changed:,} "
        f"changed, {report.decays_changed:,} with a new moment of leaving detection"
    )


@score_app.command("show")
def show_command(
    stix_id: str = typer.Argument(..., help="The indicator's STIX id."),
    org: str | None = typer.Option(None, "--org", "-o", help="As this org (default: first)."),
    json_out: bool = JsonOption,
) -> None:
    """One indicator's score now, its model and whether it takes part in detection."""
    instance = open_instance()
    try:
        with instance.begin() as conn:
            view = scoring.score_of(
                conn,
                org_principal(conn, org),
                stix_id,
                now=now_us(),
                config=scoring.config_from(instance.settings),
            )
    finally:
        instance.close()
    body = ScoreItem.of(view)
    if json_out:
        print_json(body)
        return
    table = Table("field", "value", header_style="bold", show_header=False)
    model = body.pop("model")
    body["model"] = f"tau {model['tau_days']:g} days, delta {model['delta']:g}"
    for key, value in body.items():
        table.add_row(key, "-" if value is None else str(value))
    console.print(table)
