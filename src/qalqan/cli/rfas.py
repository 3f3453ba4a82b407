"""``qalqan rfa``: requests for assistance between orgs — list, show, draft or send one, move
one through its workflow and attach evidence of its case to the answer, acting as the org
named by ``--org`` (default: the node's first org)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from qalqan.assistance import service
from qalqan.assistance.service import RfaSpec
from qalqan.cli.common import JsonOption, console, org_principal, print_json, transaction

__all__ = ["rfa_app"]

rfa_app = typer.Typer(
    help="Requests for assistance between member orgs: information, preservation, takedown.",
    no_args_is_help=True,
)

OrgOption = typer.Option(None, "--org", "-o", help="Act as this org (default: the first).")


def _other(item: dict[str, Any]) -> str:
    side = "recipient" if item["side"] == "requester" else "requester"
    return f"{'to' if side == 'recipient' else 'from'} {item[side]['name']}"


def _print_list(items: list[dict[str, Any]]) -> None:
    if not items:
        console.print("no requests")
        return
    table = Table("No", "status", "kind", "title", "with", "due")
    for item in items:
        status = item["status"] + (" (overdue)" if item["overdue"] else "")
        table.add_row(
            str(item["number"]),
            status,
            item["kind"],
            item["title"],
            _other(item),
            item["due"] or "",
        )
    console.print(table)


def _print_one(item: dict[str, Any]) -> None:
    overdue = " (overdue)" if item["overdue"] else ""
    console.print(f"RFA {item['number']}: {item['title']}")
    console.print(f"  id:          {item['id']}")
    console.print(f"  status:      {item['status']}{overdue}")
    console.print(f"  kind:        {item['kind']}   priority: {item['priority']}")
    console.print(f"  requester:   {item['requester']['name']}")
    console.print(f"  recipient:   {item['recipient']['name']}")
    for label, key in (("due", "due"), ("case", "case"), ("legal basis", "legal_basis")):
        if item[key]:
            console.print(f"  {label + ':':<12} {item[key]}")
    if item["body"]:
        console.print(f"\n{item['body']}")
    if item["answer"] is not None:
        console.print(f"\nanswer:\n{item['answer']}")
    if item.get("observables"):
        console.print("\nobservables:")
        for observable in item["observables"]:
            console.print(f"  {observable['kind']}: {observable['value']}")
    if item.get("attachments"):
        console.print("\nattachments:")
        for attached in item["attachments"]:
            console.print(
                f"  {attached['evidence']}  {attached['name']}  {attached['size']} bytes  "
                f"sha256 {attached['sha256']}  ({attached['attached_org']['name']}, "
                f"{attached['attached_at']})"
            )
    if item.get("events"):
        console.print("\ntimeline:")
        for event in item["events"]:
            note = f" — {event['note']}" if event["note"] else ""
            console.print(f"  {event['at']}  {event['from'] or '':<13} → {event['to']}{note}")
    if item["allowed"]:
        console.print(f"\nnext: {', '.join(item['allowed'])}")


@rfa_app.command("list")
def rfa_list(
    role: str | None = typer.Option(None, help="sent or received (default both)."),
    status: str | None = typer.Option(None, help="draft, sent, acknowledged, ..."),
    overdue: bool | None = typer.Option(
        None, "--overdue/--not-overdue", help="Only requests past (or not past) their deadline."
    ),
    other_org: str | None = typer.Option(None, "--with", help="Only requests with this org."),
    text: str | None = typer.Option(None, help="Text in title, body or legal basis."),
    sort: str = typer.Option("-updated", help="updated, created, number or due; - descends."),
    limit: int = typer.Option(100, min=1, max=1000, help="How many to show."),
    cursor: str | None = typer.Option(None, help="The next cursor of a previous --json list."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Requests the org sent or received (a draft only its requester sees)."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        page = service.list_rfas(
            conn,
            principal,
            role=role,
            status=status,
            overdue=overdue,
            org=other_org,
            text=text,
            sort=sort,
            cursor=cursor,
            limit=limit,
        )
    if json_out:
        print_json(page.to_dict())
    else:
        _print_list(page.items)


@rfa_app.command("show")
def rfa_show(
    ref: str = typer.Argument(..., help="Request id or number."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """One request with its observables, status timeline and attachments."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        item = service.describe(
            conn, principal, service.load_rfa(conn, principal, ref), detail=True
        )
    if json_out:
        print_json(item)
    else:
        _print_one(item)


@rfa_app.command("create")
def rfa_create(
    to: str = typer.Option(..., "--to", help="The recipient org (id or name)."),
    kind: str = typer.Option(..., help=", ".join(service.KINDS) + "."),
    title: str = typer.Option(..., "--title", "-t", help="What is asked, in one line."),
    body: str = typer.Option("", help="What is asked, in detail."),
    legal_basis: str = typer.Option("", "--legal-basis", help="The legal basis of the request."),
    due: str | None = typer.Option(None, help="Answer requested by (RFC 3339 time or date)."),
    priority: str = typer.Option("medium", help="low, medium, high or urgent."),
    case: str | None = typer.Option(None, help="A case id the org takes part in."),
    observable: list[str] = typer.Option(
        [], "--observable", help="An observable it concerns (repeatable; defanged is fine)."
    ),
    send: bool = typer.Option(False, "--send", help="Send at once instead of keeping a draft."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Draft a request from the org (or send it at once with --send)."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        row = service.create_rfa(
            conn,
            principal,
            RfaSpec(
                to=to,
                kind=kind,
                title=title,
                body=body,
                legal_basis=legal_basis,
                due=due,
                priority=priority,
                case=case,
                observables=observable,
                send=send,
            ),
        )
        item = service.describe(conn, principal, row, detail=True)
    if json_out:
        print_json(item)
    else:
        console.print(f"RFA {item['number']} {item['status']}: {item['id']}")


@rfa_app.command("transition")
def rfa_transition(
    ref: str = typer.Argument(..., help="Request id or number."),
    to: str = typer.Option(..., "--to", help="The next status, e.g. sent, acknowledged."),
    note: str = typer.Option("", help="Why (required to decline)."),
    answer: str | None = typer.Option(None, help="The answer (to answer)."),
    attach: list[str] = typer.Option(
        [],
        "--attach",
        metavar="EVIDENCE_ID",
        help="With the answer: an evidence item of the request's case (repeatable).",
    ),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Move a request to its next status."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        row = service.transition(
            conn, principal, ref, to, note=note, answer=answer, attachments=attach
        )
        item = service.describe(conn, principal, row, detail=True)
    if json_out:
        print_json(item)
    else:
        attached = f" with {len(item['attachments'])} attachment(s)" if attach else ""
        console.print(f"RFA {item['number']} is now {item['status']}{attached}")


@rfa_app.command("attach")
def rfa_attach(
    ref: str = typer.Argument(..., help="Request id or number."),
    evidence: list[str] = typer.Argument(
        ..., metavar="EVIDENCE_ID...", help="Evidence items of the request's case."
    ),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Attach evidence of the request's case to its answer, before answering (the recipient,
    while the request is acknowledged or in progress)."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        row = service.attach_evidence(conn, principal, ref, evidence)
        item = service.describe(conn, principal, row, detail=True)
    if json_out:
        print_json(item)
    else:
        console.print(f"RFA {item['number']} has {len(item['attachments'])} attachment(s)")


@rfa_app.command("notify-overdue")
def rfa_notify_overdue(json_out: bool = JsonOption) -> None:
    """Tell requesters about requests past their deadline (once each); run periodically."""
    with transaction() as conn:
        told = service.notify_overdue(conn)
    if json_out:
        print_json({"notified": told})
    else:
        console.print(f"{told} overdue request(s) notified")
