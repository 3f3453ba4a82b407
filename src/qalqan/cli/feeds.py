"""``qalqan feed``, ``qalqan warninglist`` and ``qalqan worker``: subscribe to feeds, run them,
keep known-benign values apart."""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path

import orjson
import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from qalqan.api.feed_schemas import FeedDetail, FeedPublic, RunPublic
from qalqan.cli.common import (
    JsonOption,
    console,
    err_console,
    open_instance,
    org_principal,
    print_json,
    transaction,
)
from qalqan.domain.durations import parse_duration
from qalqan.domain.handling import TLP, Distribution
from qalqan.errors import InvalidInput, parse_field
from qalqan.feeds import schedule, subscriptions
from qalqan.feeds.pipeline import RunReport
from qalqan.feeds.sources import source_kinds
from qalqan.intel import custom_warninglists

__all__ = ["feed_app", "warninglist_app", "worker_command"]

feed_app = typer.Typer(
    help="Threat feeds: blocklists, CSV, MISP feeds, STIX, TAXII and reports.",
    no_args_is_help=True,
)
warninglist_app = typer.Typer(
    help="Warninglists of known-benign values (MISP's and the node's own).", no_args_is_help=True
)

_SHOWN_ERRORS = 20


def _options(pairs: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"write options as KEY=VALUE, not {pair!r}", field="option")
        options[key.strip().replace("-", "_")] = value
    return options


def _seconds(field: str, text: str | None) -> int | None:
    return parse_field(field, parse_duration, text)


@feed_app.command("add")
def feed_add(
    name: str = typer.Argument(..., help="A short name, e.g. spamhaus-drop."),
    source: str = typer.Option(..., "--source", "-s", help="Source kind (see `feed sources`)."),
    url: str = typer.Option(..., "--url", "-u", help="http(s):// URL or file:///path."),
    org: str | None = typer.Option(None, "--org", "-o", help="Owner org (default: first)."),
    tlp: str | None = typer.Option(None, help="TLP of its indicators (default: the org's)."),
    distribution: str | None = typer.Option(None, help="Distribution (default: the org's)."),
    sharing_group: str | None = typer.Option(None, help="Sharing group, with sharing_group."),
    confidence: int | None = typer.Option(None, help="Confidence 0-100 of its indicators."),
    schedule_every: str | None = typer.Option(
        None, "--schedule", help="Run every so often, e.g. 1h (default: only by hand)."
    ),
    expire_after: str | None = typer.Option(
        "7d", help="Expire values gone from the feed this long, e.g. 7d; 'never' to keep them."
    ),
    on_warninglist: str = typer.Option("flag", help="flag (store, marked) or drop."),
    option: list[str] = typer.Option(
        [], "--option", "-O", help="Source option KEY=VALUE (repeatable)."
    ),
    disabled: bool = typer.Option(False, "--disabled", help="Add it switched off."),
    json_out: bool = JsonOption,
) -> None:
    """Subscribe to a feed."""
    expiry = None if expire_after in (None, "never") else _seconds("expire-after", expire_after)
    with transaction() as conn:
        principal = org_principal(conn, None)
        feed = subscriptions.add_feed(
            conn,
            principal,
            subscriptions.FeedSpec(
                name=name,
                source=source,
                url=url,
                owner_org=org,
                options=_options(option),
                tlp=parse_field("tlp", TLP.parse, tlp),
                distribution=parse_field("distribution", Distribution.parse, distribution),
                sharing_group=sharing_group,
                confidence=confidence,
                schedule_seconds=_seconds("schedule", schedule_every),
                expire_after_seconds=expiry,
                on_warninglist=on_warninglist,
                enabled=not disabled,
            ),
        )
    if json_out:
        print_json(FeedPublic.of(feed).model_dump())
    else:
        console.print(f"added feed {feed.name} ({feed.source}) id {feed.id}")


@feed_app.command("list")
def feed_list(json_out: bool = JsonOption) -> None:
    """The feeds of this node."""
    with transaction() as conn:
        feeds = subscriptions.feeds_for(conn, org_principal(conn, None))
    if json_out:
        print_json([FeedPublic.of(f).model_dump() for f in feeds])
        return
    table = Table("name", "source", "url", "tlp", "schedule", "expire after", "enabled")
    for f in feeds:
        shown = FeedPublic.of(f)
        table.add_row(
            f.name,
            f.source,
            f.url,
            shown.tlp,
            shown.schedule or "-",
            shown.expire_after or "never",
            "yes" if f.enabled else "no",
        )
    console.print(table)


def _progress(quiet: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} items"),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
    )


def _print_report(report: RunReport) -> None:
    c = report.counts
    console.print(
        f"{report.feed}: {report.status} — {c['new']} new, {c['updated']} updated, "
        f"{c['unchanged']} unchanged, {c['expired']} expired, {c['warninglisted']} warninglisted"
        f" ({c['dropped']} dropped), {c['duplicates']} duplicates, {c['rejected']} rejected"
    )
    if report.error:
        console.print(f"  failed: {report.error}")
    for e in report.errors[:_SHOWN_ERRORS]:
        where = f"line {e['line']}" + (f" {e['field']}" if e.get("field") else "")
        console.print(f"  {where}: {e['reason']}")
    if len(report.errors) > _SHOWN_ERRORS or c["rejected"] > len(report.errors):
        console.print(f"  ... {c['rejected'] - _SHOWN_ERRORS} more rejected")


@feed_app.command("run")
def feed_run(
    name: str | None = typer.Argument(None, help="The feed to run."),
    all_feeds: bool = typer.Option(False, "--all", help="Run every enabled feed."),
    json_out: bool = JsonOption,
) -> None:
    """Run a feed now (or all enabled ones) and print what changed."""
    if (name is None) == (not all_feeds):
        raise InvalidInput("name one feed, or give --all", field="name")
    instance = open_instance()
    try:
        with instance.begin() as conn:
            principal = org_principal(conn, None)
            if all_feeds:
                names = [f.name for f in subscriptions.feeds_for(conn, principal) if f.enabled]
            else:
                names = [subscriptions.feed_for(conn, principal, name or "").name]
        index = custom_warninglists.index_for(instance)
        reports: list[RunReport] = []
        with _progress(json_out) as bar:
            for feed_name in names:
                task = bar.add_task(feed_name, total=None)
                reports.append(
                    subscriptions.run_now(
                        instance,
                        principal,
                        feed_name,
                        index,
                        trigger="cli",
                        progress=lambda n, task=task: bar.advance(task, n),  # type: ignore[misc]
                    )
                )
                bar.remove_task(task)
    finally:
        instance.close()
    if json_out:
        print_json(reports[0].to_dict() if not all_feeds else [r.to_dict() for r in reports])
    else:
        for report in reports:
            _print_report(report)
    if any(r.status != "ok" for r in reports):
        raise typer.Exit(1)


@feed_app.command("show")
def feed_show(
    name: str = typer.Argument(..., help="Feed name or id."),
    runs: int = typer.Option(5, min=1, max=100, help="How many recent runs to show."),
    json_out: bool = JsonOption,
) -> None:
    """A feed's settings and its last runs (counts, duration, errors with line numbers)."""
    with transaction() as conn:
        feed, recent = subscriptions.runs_of(conn, org_principal(conn, None), name, runs)
    if json_out:
        detail = FeedDetail(
            **FeedPublic.of(feed).model_dump(), runs=[RunPublic.of(r) for r in recent]
        )
        print_json(detail.model_dump())
        return
    for key, value in FeedPublic.of(feed).model_dump().items():
        console.print(f"{key:>15}: {value}")
    table = Table("run", "started", "status", "s", "new", "upd", "same", "exp", "warn", "rej")
    for r in recent:
        p = RunPublic.of(r)
        table.add_row(
            str(r.id),
            p.started_at[:19],
            r.status,
            str(p.duration_s),
            str(r.new),
            str(r.updated),
            str(r.unchanged),
            str(r.expired),
            str(r.warninglisted),
            str(r.rejected),
        )
    console.print(table)
    for r in recent[:1]:
        if r.error:
            console.print(f"last run failed: {r.error}")
        for e in r.errors[:_SHOWN_ERRORS]:
            console.print(f"  line {e['line']}: {e['reason']}")


def _switch(name: str, enabled: bool, json_out: bool) -> None:
    with transaction() as conn:
        feed = subscriptions.change_feed(
            conn, org_principal(conn, None), name, subscriptions.FeedChanges(enabled=enabled)
        )
    if json_out:
        print_json(FeedPublic.of(feed).model_dump())
    else:
        console.print(f"feed {feed.name} {'enabled' if enabled else 'disabled'}")


@feed_app.command("enable")
def feed_enable(
    name: str = typer.Argument(..., help="Feed name or id."), json_out: bool = JsonOption
) -> None:
    """Switch a feed on: scheduled runs resume."""
    _switch(name, True, json_out)


@feed_app.command("disable")
def feed_disable(
    name: str = typer.Argument(..., help="Feed name or id."), json_out: bool = JsonOption
) -> None:
    """Switch a feed off: no scheduled runs; its indicators stay as they are."""
    _switch(name, False, json_out)


@feed_app.command("set")
def feed_set(
    name: str = typer.Argument(..., help="Feed name or id."),
    url: str | None = typer.Option(None, help="New URL."),
    tlp: str | None = typer.Option(None, help="TLP of its indicators from now on."),
    distribution: str | None = typer.Option(None, help="Distribution from now on."),
    sharing_group: str | None = typer.Option(None, help="Sharing group."),
    confidence: int | None = typer.Option(None, help="Confidence 0-100."),
    schedule_every: str | None = typer.Option(None, "--schedule", help="e.g. 1h, or 'off'."),
    expire_after: str | None = typer.Option(None, help="e.g. 7d, or 'never'."),
    on_warninglist: str | None = typer.Option(None, help="flag or drop."),
    option: list[str] = typer.Option([], "--option", "-O", help="Source option KEY=VALUE."),
    json_out: bool = JsonOption,
) -> None:
    """Change a feed's settings."""
    changes = subscriptions.FeedChanges(
        url=url,
        options=_options(option) if option else None,
        tlp=parse_field("tlp", TLP.parse, tlp),
        distribution=parse_field("distribution", Distribution.parse, distribution),
        sharing_group=sharing_group,
        confidence=confidence,
        schedule_seconds=None if schedule_every == "off" else _seconds("schedule", schedule_every),
        expire_after_seconds=(
            None if expire_after == "never" else _seconds("expire-after", expire_after)
        ),
        on_warninglist=on_warninglist,
        clear_schedule=schedule_every == "off",
        clear_expiry=expire_after == "never",
    )
    with transaction() as conn:
        feed = subscriptions.change_feed(conn, org_principal(conn, None), name, changes)
    if json_out:
        print_json(FeedPublic.of(feed).model_dump())
    else:
        console.print(f"feed {feed.name} changed")


@feed_app.command("remove")
def feed_remove(
    name: str = typer.Argument(..., help="Feed name or id."), json_out: bool = JsonOption
) -> None:
    """Unsubscribe. The indicators the feed stored stay (expire them first if they must go)."""
    with transaction() as conn:
        feed = subscriptions.remove_feed(conn, org_principal(conn, None), name)
    if json_out:
        print_json({"removed": feed.name, "id": feed.id})
    else:
        console.print(f"removed feed {feed.name}")


@feed_app.command("sources")
def feed_sources(json_out: bool = JsonOption) -> None:
    """The source kinds and their options."""
    kinds = {
        kind: {
            "summary": cls.summary,
            "options": {
                name: str(info.annotation).replace("typing.", "")
                for name, info in cls.options_model.model_fields.items()
            },
        }
        for kind, cls in source_kinds().items()
    }
    if json_out:
        print_json(kinds)
        return
    for kind, about in kinds.items():
        options = ", ".join(about["options"]) or "no options"
        console.print(f"{kind:>10}: {about['summary']} (options: {options})")


@warninglist_app.command("add")
def warninglist_add(
    file: Path = typer.Argument(..., help="A list in MISP's format (JSON)."),
    json_out: bool = JsonOption,
) -> None:
    """Add a custom warninglist, e.g. the government's own address ranges."""
    if not file.is_file():
        raise InvalidInput(f"{file}: no such file", field="file")
    try:
        document = orjson.loads(file.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{file} is not valid JSON: {exc}", field="file") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"{file} is not a warninglist object", field="file")
    with transaction() as conn:
        wl = custom_warninglists.add_list(conn, None, document)
    if json_out:
        print_json({"id": wl.id, "name": wl.name, "type": wl.type, "entries": len(wl.entries)})
    else:
        console.print(f"added warninglist {wl.name} ({wl.type}, {len(wl.entries)} entries)")


@warninglist_app.command("list")
def warninglist_list(
    all_lists: bool = typer.Option(False, "--all", help="Also MISP's lists."),
    json_out: bool = JsonOption,
) -> None:
    """The custom warninglists (and with --all, MISP's)."""
    from qalqan.intel.warninglists import misp_lists

    with transaction() as conn:
        custom = custom_warninglists.lists(conn)
    rows: list[tuple[str, str, list[str], int, str]] = [
        (w.name, w.type, list(w.kinds), len(w.entries), "custom") for w in custom
    ]
    if all_lists:
        rows += [(w.name, w.type, sorted(w.kinds), len(w.entries), "misp") for w in misp_lists()]
    if json_out:
        names = ("name", "type", "kinds", "entries", "origin")
        print_json([dict(zip(names, row, strict=True)) for row in rows])
        return
    table = Table("name", "type", "kinds", "entries", "origin")
    for name, kind, kinds, entries, origin in rows:
        table.add_row(name, kind, ",".join(kinds), str(entries), origin)
    console.print(table)


@warninglist_app.command("remove")
def warninglist_remove(
    name: str = typer.Argument(..., help="Name or id of a custom list."),
) -> None:
    """Remove a custom warninglist."""
    with transaction() as conn:
        custom_warninglists.remove_list(conn, None, name)
    console.print(f"removed warninglist {name}")


@warninglist_app.command("check")
def warninglist_check(
    values: list[str] = typer.Argument(..., help="Values to check (kind detected)."),
    json_out: bool = JsonOption,
) -> None:
    """Which warninglists hold these values, and why."""
    from qalqan.domain.observables import InvalidObservable, parse_value

    instance = open_instance()
    try:
        index = custom_warninglists.index_for(instance)
    finally:
        instance.close()
    results: list[dict[str, str | None]] = []
    for raw in values:
        try:
            o = parse_value(raw)
        except InvalidObservable as exc:
            results.append({"value": raw, "error": str(exc)})
            continue
        hit = index.check(o.kind, o.value)
        results.append(
            {
                "value": o.value,
                "kind": o.kind,
                "list": hit.list_name if hit else None,
                "reason": hit.reason if hit else None,
            }
        )
    if json_out:
        print_json(results)
        return
    for r in results:
        if "error" in r:
            console.print(f"{r['value']}: {r['error']}")
        elif r["list"]:
            console.print(f"{r['value']} ({r['kind']}): on {r['list']!r} — {r['reason']}")
        else:
            console.print(f"{r['value']} ({r['kind']}): on no warninglist")


def worker_command(
    poll: str = typer.Option("30s", help="How often to look for due feeds."),
    once: bool = typer.Option(False, "--once", help="Run what is due now, then exit."),
) -> None:
    """Run scheduled feeds and refresh confidence scores every 10 minutes (production mode;
    start several — a feed never runs twice at once)."""
    interval = parse_field("poll", parse_duration, poll)
    instance = open_instance()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker = f"{socket.gethostname()}-{threading.get_native_id()}"
    console.print(f"worker {worker} polling every {interval} s")
    try:
        schedule.work(
            instance,
            worker,
            stop,
            interval=max(1, interval),
            once=once,
            on_report=_print_report,
            score_every=schedule.SCORE_REFRESH_SECONDS,
        )
    finally:
        instance.close()
