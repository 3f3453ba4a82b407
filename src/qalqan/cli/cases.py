"""``qalqan case``: open, list and show cases, add tasks, move a case through its workflow and
invite orgs, acting as the org named by ``--org`` (default: the node's first org)."""

from __future__ import annotations

import typer
from rich.table import Table

from qalqan.api.case_schemas import CaseDetail, CasePublic, CaseTaskPublic, ParticipantPublic, iso
from qalqan.cases import activity, service, tasks
from qalqan.cases.base import parse_moment
from qalqan.cases.service import CaseSpec
from qalqan.cases.tasks import TaskSpec
from qalqan.cli.common import JsonOption, console, org_principal, print_json, transaction
from qalqan.store import cases as store
from qalqan.store.clock import now_us

__all__ = ["case_app"]

case_app = typer.Typer(
    help="Cases worked together with other orgs: tasks, timeline, observables.",
    no_args_is_help=True,
)
task_app = typer.Typer(help="Tasks of a case.", no_args_is_help=True)
case_app.add_typer(task_app, name="task")

OrgOption = typer.Option(None, "--org", "-o", help="Act as this org (default: the first).")


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
        table = Table("task", "status", "due", "id")
        for t in detail.tasks:
            table.add_row(t.title, t.status, t.due or "-", t.id)
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
