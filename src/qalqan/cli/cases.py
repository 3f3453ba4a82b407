"""``qalqan case``: open, list, show and change cases; comment, keep the timeline, link
observables; add, change and log work on tasks; move a case through its workflow and invite
orgs. Commands act as the org named by ``--org`` (default: the node's first org), with the
rights of a node administrator of that org.

Paged lists print a ``--cursor`` for the next page; ``--json`` prints ``{"items", "next"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import typer
from rich.table import Table
from sqlalchemy import Connection

from qalqan.api.case_schemas import (
    CaseCommentPublic,
    CaseDetail,
    CaseObservablePublic,
    CasePublic,
    CaseTaskPublic,
    CaseTemplatePublic,
    CaseTimelinePublic,
    ParticipantPublic,
    TaskLogPublic,
    iso,
)
from qalqan.cases import activity, service, tasks
from qalqan.cases.base import load_case, parse_moment
from qalqan.cases.service import CaseChanges, CaseSpec
from qalqan.cases.tasks import TaskChanges, TaskSpec
from qalqan.cases.templates import TEMPLATES
from qalqan.cli.common import JsonOption, console, org_principal, print_json, transaction
from qalqan.domain.observables import KINDS
from qalqan.errors import InvalidInput, NotFound
from qalqan.intel.reading import decode_key_cursor, encode_key_cursor
from qalqan.store import accounts as accounts_store
from qalqan.store import cases as store
from qalqan.store.clock import now_us

__all__ = ["case_app"]

case_app = typer.Typer(
    help="Cases worked together with other orgs: tasks, timeline, observables.",
    no_args_is_help=True,
)
task_app = typer.Typer(help="Tasks of a case.", no_args_is_help=True)
case_app.add_typer(task_app, name="task")
observable_app = typer.Typer(help="Observables linked to a case.", no_args_is_help=True)
case_app.add_typer(observable_app, name="observable")

OrgOption = typer.Option(None, "--org", "-o", help="Act as this org (default: the first).")
CaseArgument = typer.Argument(..., help="Case id or number.")
TaskArgument = typer.Argument(..., metavar="TASK", help="Task id.")
CursorOption = typer.Option(None, help="The next cursor a previous page printed.")
_Row = TypeVar("_Row")


def _page(
    items: list[_Row], limit: int, key: Callable[[_Row], Sequence[int | str]]
) -> tuple[list[_Row], str | None]:
    """The first ``limit`` of ``items`` (fetched ``limit + 1``) and the next page's cursor."""
    if len(items) <= limit:
        return items, None
    return items[:limit], encode_key_cursor(key(items[limit - 1]))


def _print_page(
    data: list[dict[str, Any]], next_cursor: str | None, json_out: bool, table: Table
) -> None:
    if json_out:
        print_json({"items": data, "next": next_cursor})
        return
    console.print(table)
    if next_cursor:
        console.print(f"more: --cursor {next_cursor}")


def _moment(text: str | None) -> str:
    """An RFC 3339 time to the second, for tables (``--json`` keeps the microseconds)."""
    return f"{text[:19]}Z" if text else ""


def _id_column(table: Table) -> Table:
    """Ids are to copy into the next command: never cut or wrapped."""
    table.add_column("id", no_wrap=True, min_width=36)
    return table


def _org_names(conn: Connection) -> dict[str, str]:
    return {o.id: o.name for o in accounts_store.list_orgs(conn)}


def _emails(conn: Connection, user_ids: Iterable[str | None]) -> dict[str, str]:
    """Emails of the users with these ids (disabled ones too), for display."""
    found: dict[str, str] = {}
    for user_id in {u for u in user_ids if u}:
        try:
            found[user_id] = accounts_store.get_user(conn, user_id).email
        except NotFound:
            found[user_id] = user_id
    return found


@case_app.command("create")
def case_create(
    title: str = typer.Option(..., "--title", "-t", help="What the case is about."),
    template: str | None = typer.Option(
        None, help="ransomware, phishing-campaign, ddos, data-leak or online-fraud."
    ),
    severity: str | None = typer.Option(None, help="low, medium, high or critical."),
    tlp: str | None = typer.Option(None, help="TLP of the case (default amber)."),
    pap: str | None = typer.Option(None, help="PAP of the case (default amber)."),
    description: str = typer.Option("", help="Longer description."),
    label: list[str] = typer.Option([], "--label", "-l", help="A label (repeatable)."),
    technique: list[str] = typer.Option([], "--technique", help="ATT&CK id, e.g. T1486."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Open a case owned by the org (its lead)."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        row = service.create_case(
            conn,
            principal,
            CaseSpec(
                title=title,
                description=description,
                severity=severity,
                tlp=tlp,
                pap=pap,
                template=template,
                labels=label,
                techniques=technique,
            ),
        )
        shown = CasePublic.of(service.summary_of(conn, [row])[0])
    if json_out:
        print_json(shown.model_dump(mode="json"))
    else:
        console.print(f"opened case #{shown.number} {shown.title} (id {shown.id})")


@case_app.command("list")
def case_list(
    status: list[str] = typer.Option([], "--status", "-s", help="Status (repeatable)."),
    label: str | None = typer.Option(None, help="Only cases with this label."),
    text: str | None = typer.Option(None, help="Text in title or description."),
    overdue: bool = typer.Option(False, "--overdue", help="Only cases with overdue tasks."),
    limit: int = typer.Option(50, min=1, max=1000, help="At most this many cases."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Cases the org takes part in, most recently updated first."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        found = service.list_cases(
            conn,
            principal,
            store.CaseFilter(
                statuses=status or None,
                label=label,
                text=text or None,
                overdue_at=now_us() if overdue else None,
            ),
            limit=limit,
        )
    items = [CasePublic.of(s) for s in found]
    if json_out:
        print_json([c.model_dump(mode="json") for c in items])
        return
    table = Table("#", "title", "status", "severity", "tlp", "labels", "updated")
    for c in items:
        table.add_row(
            str(c.number), c.title, c.status, c.severity, c.tlp, ", ".join(c.labels), c.updated
        )
    console.print(table)


@case_app.command("show")
def case_show(
    case: str = typer.Argument(..., help="Case id or number."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """A case with its participants, tasks, latest timeline and observables."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        page = activity.case_page(conn, principal, case)
        detail = CaseDetail.of(page, now_us())
    if json_out:
        print_json(detail.model_dump(mode="json"))
        return
    c = detail.case
    console.print(f"case #{c.number}: {c.title}")
    console.print(f"status {c.status}, severity {c.severity}, TLP:{c.tlp.upper()}, PAP {c.pap}")
    if c.resolution:
        console.print(f"resolution: {c.resolution}")
    console.print("orgs: " + ", ".join(f"{p.org_name} ({p.role})" for p in detail.participants))
    if c.labels:
        console.print("labels: " + ", ".join(c.labels))
    if c.description:
        console.print(c.description)
    if detail.tasks:
        table = _id_column(Table("task", "status", "due"))
        for t in detail.tasks:
            table.add_row(t.title, t.status, _moment(t.due) or "-", t.id)
        console.print(table)
    for entry in detail.timeline[:10]:
        console.print(f"{entry.at}  {entry.text}")


@case_app.command("status")
def case_status(
    case: str = typer.Argument(..., help="Case id or number."),
    status: str = typer.Argument(..., help="new, in-progress, on-hold, resolved or closed."),
    resolution: str | None = typer.Option(None, help="Needed for resolved and closed."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Move a case through its workflow."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        row = service.change_status(conn, principal, case, status, resolution)
        shown = CasePublic.of(service.summary_of(conn, [row])[0])
    if json_out:
        print_json(shown.model_dump(mode="json"))
    else:
        console.print(f"case #{shown.number} is now {shown.status}")


@case_app.command("invite")
def case_invite(
    case: str = typer.Argument(..., help="Case id or number."),
    invited: str = typer.Argument(..., metavar="ORG", help="The org to invite (id or name)."),
    role: str = typer.Option("contributor", help="lead, contributor or observer."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Invite an org into a case (leads only); it then sees the whole case."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        added = service.add_participant(conn, principal, case, invited, role)
    shown = ParticipantPublic.of(added)
    if json_out:
        print_json(shown.model_dump(mode="json"))
    else:
        console.print(f"{shown.org_name} takes part as {shown.role}")


@task_app.command("add")
def task_add(
    case: str = typer.Argument(..., help="Case id or number."),
    title: str = typer.Option(..., "--title", "-t", help="What is to be done."),
    assignee: str | None = typer.Option(None, help="User email or id."),
    due: str | None = typer.Option(None, help="Due date or time (RFC 3339)."),
    description: str = typer.Option("", help="Longer description."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Add a task to a case."""
    due_at = parse_moment("due", due) if due else None
    with transaction() as conn:
        principal = org_principal(conn, org)
        task = tasks.add_task(
            conn,
            principal,
            case,
            TaskSpec(title=title, description=description, assignee=assignee, due_at=due_at),
        )
    shown = CaseTaskPublic.of(task, now_us())
    if json_out:
        print_json(shown.model_dump(mode="json"))
    else:
        console.print(f"added task {shown.title} (id {shown.id}, due {iso(task.due_at) or '-'})")


@case_app.command("update")
def case_update(
    case: str = CaseArgument,
    title: str | None = typer.Option(None, "--title", "-t", help="A new title."),
    description: str | None = typer.Option(None, help="A new description."),
    severity: str | None = typer.Option(None, help="low, medium, high or critical."),
    tlp: str | None = typer.Option(
        None, help="clear, green, amber, amber+strict or red (red: only the people named)."
    ),
    pap: str | None = typer.Option(None, help="clear, green, amber or red."),
    label: list[str] = typer.Option(
        [], "--label", "-l", help="A label (repeatable; replaces the labels)."
    ),
    clear_labels: bool = typer.Option(False, "--clear-labels", help="Remove every label."),
    technique: list[str] = typer.Option(
        [], "--technique", help="ATT&CK id (repeatable; replaces the techniques)."
    ),
    clear_techniques: bool = typer.Option(
        False, "--clear-techniques", help="Remove every technique."
    ),
    assignee: list[str] = typer.Option(
        [],
        "--assignee",
        "-a",
        help="User email or id of a participating org (repeatable; replaces the assignees).",
    ),
    clear_assignees: bool = typer.Option(False, "--clear-assignees", help="Remove every assignee."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Change fields of a case (leads and contributors); fields not given stay as they are."""
    changes = CaseChanges(
        title=title,
        description=description,
        severity=severity,
        tlp=tlp,
        pap=pap,
        labels=_replacement("labels", label, clear_labels),
        techniques=_replacement("techniques", technique, clear_techniques),
        assignees=_replacement("assignees", assignee, clear_assignees),
    )
    if all(getattr(changes, name) is None for name in changes.__slots__):
        raise InvalidInput("nothing to change: give at least one field to change (see --help)")
    with transaction() as conn:
        principal = org_principal(conn, org)
        row = service.update_case(conn, principal, case, changes)
        shown = CasePublic.of(service.summary_of(conn, [row])[0])
    if json_out:
        print_json(shown.model_dump(mode="json"))
    else:
        console.print(
            f"case #{shown.number}: {shown.title} — severity {shown.severity}, "
            f"TLP:{shown.tlp.upper()}, PAP {shown.pap}"
        )


def _replacement(field: str, values: list[str], clear: bool) -> list[str] | None:
    """The new set for a repeatable option: its values, [] when cleared, None when untouched."""
    if clear and values:
        raise InvalidInput(f"{field}: give values or --clear-{field}, not both", field=field)
    return [] if clear else (values or None)


@case_app.command("templates")
def case_templates(json_out: bool = JsonOption) -> None:
    """The shipped case templates, with the severity, labels and tasks they preset."""
    shown = [CaseTemplatePublic.of(t) for t in TEMPLATES.values()]
    if json_out:
        print_json([t.model_dump(mode="json") for t in shown])
        return
    table = Table("template", "title", "severity", "labels", "tasks")
    for t in shown:
        table.add_row(t.name, t.title, t.severity, ", ".join(t.labels), str(len(t.tasks)))
    console.print(table)


# --- comments and timeline ------------------------------------------------------------------


@case_app.command("comment")
def case_comment(
    case: str = CaseArgument,
    text: str = typer.Argument(..., help="The comment; @<org name> mentions an org."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Comment on a case (observers too)."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        shown = CaseCommentPublic.of(activity.add_comment(conn, principal, case, text))
        names = _org_names(conn)
    if json_out:
        print_json(shown.model_dump(mode="json"))
        return
    mentions = ", ".join(names.get(m, m) for m in shown.mentions)
    console.print(f"comment {shown.id} added" + (f", mentions {mentions}" if mentions else ""))


@case_app.command("comments")
def case_comments(
    case: str = CaseArgument,
    cursor: str | None = CursorOption,
    limit: int = typer.Option(50, min=1, max=1000, help="At most this many comments."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Comments on a case, oldest first."""
    after = decode_key_cursor(cursor, (int,))[0] if cursor else None
    with transaction() as conn:
        principal = org_principal(conn, org)
        rows = activity.comments(conn, principal, case, limit=limit + 1, after=after)
        names = _org_names(conn)
        emails = _emails(conn, (r["author_user_id"] for r in rows))
    rows, next_cursor = _page(rows, limit, lambda r: [r["id"]])
    shown = [CaseCommentPublic.of(r) for r in rows]
    table = Table("at", "by", "comment")
    for c in shown:
        by = names.get(c.author_org_id, c.author_org_id)
        if c.author_user_id:
            by += f" ({emails[c.author_user_id]})"
        table.add_row(_moment(c.at), by, c.body)
    _print_page([c.model_dump(mode="json") for c in shown], next_cursor, json_out, table)


@case_app.command("timeline")
def case_timeline(
    case: str = CaseArgument,
    cursor: str | None = CursorOption,
    limit: int = typer.Option(50, min=1, max=1000, help="At most this many entries."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """A case's timeline, newest first: automatic entries and notes (with when it happened)."""
    before = decode_key_cursor(cursor, (int,))[0] if cursor else None
    with transaction() as conn:
        principal = org_principal(conn, org)
        rows = activity.timeline(conn, principal, case, limit=limit + 1, before=before)
        names = _org_names(conn)
    rows, next_cursor = _page(rows, limit, lambda r: [r["id"]])
    shown = [CaseTimelinePublic.of(r) for r in rows]
    table = Table("written", "happened", "by", "entry")
    for e in shown:
        by = names.get(e.actor_org_id, e.actor_org_id) if e.actor_org_id else ""
        table.add_row(_moment(e.at), _moment(e.event_time), by, e.text)
    _print_page([e.model_dump(mode="json") for e in shown], next_cursor, json_out, table)


@case_app.command("note")
def case_note(
    case: str = CaseArgument,
    text: str = typer.Argument(..., help="What happened."),
    at: str | None = typer.Option(
        None, "--at", help="When it happened (RFC 3339 time or date; default: not given)."
    ),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Add a manual timeline entry: something that happened, and when."""
    event_time = parse_moment("at", at) if at else None
    with transaction() as conn:
        principal = org_principal(conn, org)
        shown = CaseTimelinePublic.of(
            activity.add_timeline_entry(conn, principal, case, text, event_time)
        )
    if json_out:
        print_json(shown.model_dump(mode="json"))
    else:
        when = f" (happened {shown.event_time})" if shown.event_time else ""
        console.print(f"timeline entry {shown.id} added{when}")


# --- observables ----------------------------------------------------------------------------


def _correlation(o: CaseObservablePublic) -> str:
    c = o.correlation
    if c is None:
        return ""
    if not c.objects and not c.sightings:
        return "nowhere"
    seen = f"{c.objects} object(s) from {c.orgs} org(s)"
    if c.countries:
        seen += f" in {', '.join(c.countries)}"
    if c.over_correlating:
        seen += " (over-correlating)"
    if c.sightings:
        seen += f"; {c.sightings} sighting(s) by {c.sighting_orgs} org(s)"
    return seen


@observable_app.command("add")
def observable_add(
    case: str = CaseArgument,
    kind: str = typer.Argument(
        ..., metavar="TYPE", help=", ".join(KINDS) + " (or a STIX type name), or auto to guess it."
    ),
    value: str = typer.Argument(..., help="The value (defanged is fine)."),
    stix_id: str | None = typer.Option(None, "--stix-id", help="Intelligence it came from."),
    note: str = typer.Option("", help="A short note."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Link an observable to a case; shows what else on the node knows it."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        row = activity.add_observable(
            conn,
            principal,
            case,
            value,
            kind=None if kind.strip().lower() == "auto" else kind,
            stix_id=stix_id,
            note=note,
        )
    shown = CaseObservablePublic.of(row)
    if json_out:
        print_json(shown.model_dump(mode="json"))
        return
    console.print(f"added {shown.kind} {shown.value}")
    if shown.correlation is not None:
        console.print(f"seen elsewhere: {_correlation(shown)}")


@observable_app.command("list")
def observable_list(
    case: str = CaseArgument,
    cursor: str | None = CursorOption,
    limit: int = typer.Option(50, min=1, max=50, help="At most this many observables."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """A case's observables in the order they were added, with their correlations and
    sightings as your org may know them."""
    after = decode_key_cursor(cursor, (int, str, str)) if cursor else None
    with transaction() as conn:
        principal = org_principal(conn, org)
        rows = activity.observables(
            conn,
            principal,
            case,
            limit=limit + 1,
            after=(after[0], after[1], after[2]) if after else None,
        )
    rows, next_cursor = _page(rows, limit, lambda r: [r["added_at"], r["kind"], r["value"]])
    shown = [CaseObservablePublic.of(r) for r in rows]
    table = Table("type", "value", "seen elsewhere", "note")
    for o in shown:
        table.add_row(o.kind, o.value, _correlation(o), o.note)
    _print_page([o.model_dump(mode="json") for o in shown], next_cursor, json_out, table)


@observable_app.command("remove")
def observable_remove(
    case: str = CaseArgument,
    kind: str = typer.Argument(..., metavar="TYPE", help="Its type, or auto to guess it."),
    value: str = typer.Argument(..., help="The value."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Unlink an observable from a case."""
    with transaction() as conn:
        principal = org_principal(conn, org)
        activity.remove_observable(
            conn, principal, case, value, None if kind.strip().lower() == "auto" else kind
        )
    if json_out:
        print_json({"removed": True})
    else:
        console.print("removed")


# --- tasks ----------------------------------------------------------------------------------


@task_app.command("list")
def task_list(
    case: str | None = typer.Argument(None, help="Case id or number (default: every case)."),
    status: list[str] = typer.Option(
        [], "--status", "-s", help="open, in-progress, done or cancelled (repeatable)."
    ),
    assignee: str | None = typer.Option(None, help="Only tasks of this user (email or id)."),
    overdue: bool = typer.Option(False, "--overdue", help="Only open tasks past their due date."),
    cursor: str | None = CursorOption,
    limit: int = typer.Option(100, min=1, max=1000, help="At most this many tasks."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Tasks of a case (or of every case the org takes part in), most recently updated first."""
    before = decode_key_cursor(cursor, (int, str)) if cursor else None
    now = now_us()
    with transaction() as conn:
        principal = org_principal(conn, org)
        user_id: str | None = None
        if assignee is not None:
            user = store.user_of(conn, assignee) if "\x00" not in assignee else None
            if user is None:
                raise InvalidInput(f"assignee: no user {assignee[:80]!r}", field="assignee")
            user_id = user[0]
        f = store.TaskFilter(
            statuses=status or None,
            assignee_user_id=user_id,
            overdue_at=now if overdue else None,
            case_id=load_case(conn, principal, case).case.id if case else None,
        )
        rows = tasks.list_tasks(
            conn,
            principal,
            f,
            limit=limit + 1,
            before=(before[0], before[1]) if before else None,
        )
        emails = _emails(conn, (t.assignee_user_id for t in rows))
    rows, next_cursor = _page(rows, limit, lambda t: [t.updated_at, t.id])
    shown = [CaseTaskPublic.of(t, now) for t in rows]
    table = _id_column(Table("task", "status", "assignee", "due"))
    for t in shown:
        status_text = t.status + (" (overdue)" if t.overdue else "")
        who = emails[t.assignee_user_id] if t.assignee_user_id else "-"
        table.add_row(t.title, status_text, who, _moment(t.due) or "-", t.id)
    _print_page([t.model_dump(mode="json") for t in shown], next_cursor, json_out, table)


@task_app.command("update")
def task_update(
    task: str = TaskArgument,
    title: str | None = typer.Option(None, "--title", "-t", help="A new title."),
    description: str | None = typer.Option(None, help="A new description."),
    status: str | None = typer.Option(None, help="open, in-progress, done or cancelled."),
    assignee: str | None = typer.Option(None, help='User email or id; "" unassigns.'),
    task_org: str | None = typer.Option(
        None, "--task-org", help='The org doing it (id or name); "" clears it.'
    ),
    due: str | None = typer.Option(None, help='Due date or time (RFC 3339); "" clears it.'),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Change a task (leads and contributors); options not given stay as they are."""
    changes = TaskChanges(
        title=title,
        description=description,
        status=status,
        assignee=assignee,
        org=task_org,
        due_at=parse_moment("due", due) if due else None,
        clear_due=due == "",
    )
    if changes == TaskChanges():
        raise InvalidInput("nothing to change: give at least one field to change (see --help)")
    with transaction() as conn:
        principal = org_principal(conn, org)
        row = tasks.update_task(conn, principal, task, changes)
    shown = CaseTaskPublic.of(row, now_us())
    if json_out:
        print_json(shown.model_dump(mode="json"))
    else:
        console.print(f"task {shown.title}: {shown.status}, due {shown.due or '-'}")


@task_app.command("log")
def task_log(
    task: str = TaskArgument,
    text: str | None = typer.Argument(None, help="Work done (without it: show the log)."),
    org: str | None = OrgOption,
    json_out: bool = JsonOption,
) -> None:
    """Log work on a task, or show its work log (oldest first) when no TEXT is given."""
    if text is not None:
        with transaction() as conn:
            principal = org_principal(conn, org)
            entry = TaskLogPublic.of(tasks.log_work(conn, principal, task, text))
        if json_out:
            print_json(entry.model_dump(mode="json"))
        else:
            console.print(f"work logged (entry {entry.id})")
        return
    with transaction() as conn:
        principal = org_principal(conn, org)
        entries = [TaskLogPublic.of(r) for r in tasks.task_log(conn, principal, task)]
        names = _org_names(conn)
        emails = _emails(conn, (e.user_id for e in entries))
    if json_out:
        print_json([e.model_dump(mode="json") for e in entries])
        return
    table = Table("at", "by", "work")
    for e in entries:
        by = names.get(e.org_id or "", e.org_id or "")
        if e.user_id:
            by += f" ({emails[e.user_id]})"
        table.add_row(_moment(e.at), by, e.text)
    console.print(table)
