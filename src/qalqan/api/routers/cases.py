"""Cases worked together by participating orgs: cases, their participants, tasks, timeline,
comments and observables, and the case templates.

A case that does not exist and one the caller's org takes no part in get the same 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from qalqan.api.case_schemas import (
    CaseCommentCreate,
    CaseCommentPage,
    CaseCommentPublic,
    CaseCreate,
    CaseDetail,
    CaseListPage,
    CaseObservableAdd,
    CaseObservablePage,
    CaseObservablePublic,
    CasePublic,
    CaseStatusChange,
    CaseTaskCreate,
    CaseTaskPage,
    CaseTaskPublic,
    CaseTaskUpdate,
    CaseTemplatePublic,
    CaseTimelineCreate,
    CaseTimelinePage,
    CaseTimelinePublic,
    CaseUpdate,
    ParticipantAdd,
    ParticipantPublic,
    TaskLogCreate,
    TaskLogPublic,
)
from qalqan.api.deps import CurrentInstance, CurrentPrincipal, DbConn
from qalqan.api.problems import problem_responses
from qalqan.cases import activity, service, tasks
from qalqan.cases.base import load_case, parse_moment
from qalqan.cases.service import CaseChanges, CaseSpec
from qalqan.cases.tasks import TaskChanges, TaskSpec
from qalqan.cases.templates import TEMPLATES
from qalqan.domain.principal import Principal
from qalqan.errors import InvalidInput
from qalqan.intel.reading import decode_key_cursor, encode_key_cursor
from qalqan.store import cases as store
from qalqan.store.clock import now_us

__all__ = ["router"]

router = APIRouter(tags=["cases"], responses=problem_responses(400, 401))

_CASE = Path(max_length=100, description="case id or number")
_TASK = Path(max_length=100, description="task id")
_ORG = Path(max_length=300, description="org id or name")
_FOUND = problem_responses(404)
_WRITE = problem_responses(403, 404)
Cursor = Annotated[str | None, Query(max_length=300)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _user_ref(principal: Principal, conn: DbConn, ref: str | None) -> str | None:
    if ref is None:
        return None
    if ref == "me":
        if principal.user_id is None:
            raise InvalidInput("assignee: 'me' needs a user", field="assignee")
        return principal.user_id
    user = store.user_of(conn, ref) if "\x00" not in ref else None
    if user is None:
        raise InvalidInput(f"assignee: no user {ref[:80]!r}", field="assignee")
    return user[0]


def _case_out(conn: DbConn, row: store.CaseRow) -> CasePublic:
    return CasePublic.of(service.summary_of(conn, [row])[0])


@router.post(
    "/cases",
    response_model=CasePublic,
    status_code=201,
    summary="Open a case (blank or from a template), owned by your org",
    responses=problem_responses(403),
)
def create_case(conn: DbConn, principal: CurrentPrincipal, body: CaseCreate) -> CasePublic:
    """Your org becomes the case's lead; a template adds its preset tasks and labels."""
    row = service.create_case(
        conn,
        principal,
        CaseSpec(
            title=body.title,
            description=body.description,
            severity=body.severity,
            tlp=body.tlp,
            pap=body.pap,
            template=body.template,
            labels=body.labels,
            techniques=body.techniques,
            custom_fields=body.custom_fields,
        ),
    )
    return _case_out(conn, row)


@router.get("/cases", response_model=CaseListPage, summary="Cases your org takes part in")
def list_cases(
    conn: DbConn,
    principal: CurrentPrincipal,
    status: Annotated[list[str] | None, Query(description="status(es)")] = None,
    org: Annotated[str | None, Query(max_length=300, description="a participating org")] = None,
    assignee: Annotated[
        str | None, Query(max_length=320, description="user id, email or 'me'")
    ] = None,
    overdue: Annotated[bool, Query(description="only cases with an overdue open task")] = False,
    label: Annotated[str | None, Query(max_length=100)] = None,
    text: Annotated[
        str | None, Query(max_length=300, description="in title or description")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> CaseListPage:
    """Most recently updated first; pass ``next`` back as ``cursor`` for the following page."""
    before = decode_key_cursor(cursor, (int, str)) if cursor else None
    f = store.CaseFilter(
        statuses=status or None,
        org_id=service.resolve_org(conn, org).id if org is not None else None,
        assignee_user_id=_user_ref(principal, conn, assignee),
        overdue_at=now_us() if overdue else None,
        label=label,
        text=text or None,
    )
    items = service.list_cases(
        conn, principal, f, limit=limit + 1, before=(before[0], before[1]) if before else None
    )
    more = len(items) > limit
    items = items[:limit]
    token = encode_key_cursor([items[-1].row.updated_at, items[-1].row.id]) if more else None
    return CaseListPage(items=[CasePublic.of(s) for s in items], next=token)


@router.get(
    "/cases/{case_ref}",
    response_model=CaseDetail,
    summary="The case page: case, participants, tasks, timeline, observables",
    responses=_FOUND,
)
def get_case(
    conn: DbConn, principal: CurrentPrincipal, instance: CurrentInstance, case_ref: str = _CASE
) -> CaseDetail:
    """Observables carry a summary of their correlations (the first 50)."""
    page = activity.case_page(
        conn, principal, case_ref, list_limit=instance.settings.correlation_list_limit
    )
    return CaseDetail.of(page, now_us())


@router.patch(
    "/cases/{case_ref}",
    response_model=CasePublic,
    summary="Change fields of a case",
    responses=_WRITE,
)
def update_case(
    conn: DbConn, principal: CurrentPrincipal, body: CaseUpdate, case_ref: str = _CASE
) -> CasePublic:
    """Leads and contributors; each change lands on the timeline."""
    row = service.update_case(
        conn,
        principal,
        case_ref,
        CaseChanges(
            title=body.title,
            description=body.description,
            severity=body.severity,
            tlp=body.tlp,
            pap=body.pap,
            labels=body.labels,
            techniques=body.techniques,
            custom_fields=body.custom_fields,
            assignees=body.assignees,
        ),
    )
    return _case_out(conn, row)


@router.post(
    "/cases/{case_ref}/status",
    response_model=CasePublic,
    summary="Move a case through its workflow",
    responses={
        **_WRITE,
        **problem_responses(
            described={409: "Not allowed from the current status; `allowed` lists what is"}
        ),
    },
)
def change_status(
    conn: DbConn, principal: CurrentPrincipal, body: CaseStatusChange, case_ref: str = _CASE
) -> CasePublic:
    """``resolved`` and ``closed`` need a resolution; only leads reopen a closed case."""
    row = service.change_status(conn, principal, case_ref, body.status, body.resolution)
    return _case_out(conn, row)


@router.post(
    "/cases/{case_ref}/participants",
    response_model=ParticipantPublic,
    status_code=201,
    summary="Invite an org into the case (leads only)",
    responses={**_WRITE, **problem_responses(409)},
)
def add_participant(
    conn: DbConn, principal: CurrentPrincipal, body: ParticipantAdd, case_ref: str = _CASE
) -> ParticipantPublic:
    """The org then sees the whole case; the invitation is audited and on the timeline."""
    return ParticipantPublic.of(
        service.add_participant(conn, principal, case_ref, body.org, body.role)
    )


@router.patch(
    "/cases/{case_ref}/participants/{org}",
    response_model=ParticipantPublic,
    summary="Change an org's role in the case (leads only)",
    responses={**_WRITE, **problem_responses(409)},
)
def change_participant(
    conn: DbConn,
    principal: CurrentPrincipal,
    role: Annotated[str, Query(max_length=20, description="lead, contributor or observer")],
    case_ref: str = _CASE,
    org: str = _ORG,
) -> ParticipantPublic:
    """The owner org always stays lead."""
    return ParticipantPublic.of(
        service.change_participant_role(conn, principal, case_ref, org, role)
    )


@router.delete(
    "/cases/{case_ref}/participants/{org}",
    status_code=204,
    summary="Remove an org from the case (leads only)",
    responses={**_WRITE, **problem_responses(409)},
)
def remove_participant(
    conn: DbConn, principal: CurrentPrincipal, case_ref: str = _CASE, org: str = _ORG
) -> Response:
    """Never the owner org; the org's users lose their assignments in the case."""
    service.remove_participant(conn, principal, case_ref, org)
    return Response(status_code=204)


@router.post(
    "/cases/{case_ref}/tasks",
    response_model=CaseTaskPublic,
    status_code=201,
    summary="Add a task to a case",
    responses=_WRITE,
)
def add_task(
    conn: DbConn, principal: CurrentPrincipal, body: CaseTaskCreate, case_ref: str = _CASE
) -> CaseTaskPublic:
    """The assignee must be a user of a participating org; the task's org defaults to theirs."""
    due = parse_moment("due", body.due) if body.due else None
    task = tasks.add_task(
        conn,
        principal,
        case_ref,
        TaskSpec(
            title=body.title,
            description=body.description,
            assignee=body.assignee,
            org=body.org,
            due_at=due,
        ),
    )
    return CaseTaskPublic.of(task, now_us())


@router.get(
    "/tasks",
    response_model=CaseTaskPage,
    summary="Tasks across your org's cases",
    responses=_FOUND,
)
def list_tasks(
    conn: DbConn,
    principal: CurrentPrincipal,
    assignee: Annotated[
        str | None, Query(max_length=320, description="user id, email or 'me'")
    ] = None,
    status: Annotated[
        list[str] | None, Query(description="open, in-progress, done, cancelled")
    ] = None,
    overdue: Annotated[bool, Query(description="open tasks past their due date")] = False,
    case: Annotated[str | None, Query(max_length=100, description="one case's tasks")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> CaseTaskPage:
    """Most recently updated first; pass ``next`` back as ``cursor``."""
    before = decode_key_cursor(cursor, (int, str)) if cursor else None
    now = now_us()
    f = store.TaskFilter(
        statuses=status or None,
        assignee_user_id=_user_ref(principal, conn, assignee),
        overdue_at=now if overdue else None,
        case_id=load_case(conn, principal, case).case.id if case else None,
    )
    rows = tasks.list_tasks(
        conn, principal, f, limit=limit + 1, before=(before[0], before[1]) if before else None
    )
    more = len(rows) > limit
    rows = rows[:limit]
    token = encode_key_cursor([rows[-1].updated_at, rows[-1].id]) if more else None
    return CaseTaskPage(items=[CaseTaskPublic.of(t, now) for t in rows], next=token)


@router.patch(
    "/tasks/{task_id}",
    response_model=CaseTaskPublic,
    summary="Change a task: status, assignee, due date, ...",
    responses=_WRITE,
)
def update_task(
    conn: DbConn, principal: CurrentPrincipal, body: CaseTaskUpdate, task_id: str = _TASK
) -> CaseTaskPublic:
    """``""`` clears the assignee, org or due date."""
    due = parse_moment("due", body.due) if body.due else None
    task = tasks.update_task(
        conn,
        principal,
        task_id,
        TaskChanges(
            title=body.title,
            description=body.description,
            status=body.status,
            assignee=body.assignee,
            org=body.org,
            due_at=due,
            clear_due=body.due == "",
        ),
    )
    return CaseTaskPublic.of(task, now_us())


@router.get(
    "/tasks/{task_id}/log",
    response_model=list[TaskLogPublic],
    summary="A task's work log",
    responses=_FOUND,
)
def task_log(
    conn: DbConn, principal: CurrentPrincipal, task_id: str = _TASK
) -> list[TaskLogPublic]:
    """Oldest first (the first 500 entries)."""
    return [TaskLogPublic.of(r) for r in tasks.task_log(conn, principal, task_id)]


@router.post(
    "/tasks/{task_id}/log",
    response_model=TaskLogPublic,
    status_code=201,
    summary="Log work on a task",
    responses=_WRITE,
)
def log_work(
    conn: DbConn, principal: CurrentPrincipal, body: TaskLogCreate, task_id: str = _TASK
) -> TaskLogPublic:
    return TaskLogPublic.of(tasks.log_work(conn, principal, task_id, body.text))


@router.get(
    "/cases/{case_ref}/timeline",
    response_model=CaseTimelinePage,
    summary="A case's timeline, newest first",
    responses=_FOUND,
)
def get_timeline(
    conn: DbConn,
    principal: CurrentPrincipal,
    case_ref: str = _CASE,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> CaseTimelinePage:
    before = decode_key_cursor(cursor, (int,))[0] if cursor else None
    rows = activity.timeline(conn, principal, case_ref, limit=limit + 1, before=before)
    more = len(rows) > limit
    rows = rows[:limit]
    return CaseTimelinePage(
        items=[CaseTimelinePublic.of(r) for r in rows],
        next=encode_key_cursor([rows[-1]["id"]]) if more else None,
    )


@router.post(
    "/cases/{case_ref}/timeline",
    response_model=CaseTimelinePublic,
    status_code=201,
    summary="Add a manual timeline entry",
    responses=_WRITE,
)
def add_timeline(
    conn: DbConn, principal: CurrentPrincipal, body: CaseTimelineCreate, case_ref: str = _CASE
) -> CaseTimelinePublic:
    """``event_time`` says when it happened; the entry also records when it was written."""
    event = parse_moment("event_time", body.event_time) if body.event_time else None
    row = activity.add_timeline_entry(conn, principal, case_ref, body.text, event)
    return CaseTimelinePublic.of(row)


@router.get(
    "/cases/{case_ref}/comments",
    response_model=CaseCommentPage,
    summary="Comments on a case, oldest first",
    responses=_FOUND,
)
def get_comments(
    conn: DbConn,
    principal: CurrentPrincipal,
    case_ref: str = _CASE,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> CaseCommentPage:
    after = decode_key_cursor(cursor, (int,))[0] if cursor else None
    rows = activity.comments(conn, principal, case_ref, limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    return CaseCommentPage(
        items=[CaseCommentPublic.of(r) for r in rows],
        next=encode_key_cursor([rows[-1]["id"]]) if more else None,
    )


@router.post(
    "/cases/{case_ref}/comments",
    response_model=CaseCommentPublic,
    status_code=201,
    summary="Comment on a case (@org mentions participating orgs)",
    responses=_WRITE,
)
def add_comment(
    conn: DbConn, principal: CurrentPrincipal, body: CaseCommentCreate, case_ref: str = _CASE
) -> CaseCommentPublic:
    """Observers may comment too."""
    return CaseCommentPublic.of(activity.add_comment(conn, principal, case_ref, body.body))


@router.get(
    "/cases/{case_ref}/observables",
    response_model=CaseObservablePage,
    summary="Observables of a case with their correlations",
    responses=_FOUND,
)
def get_observables(
    conn: DbConn,
    principal: CurrentPrincipal,
    instance: CurrentInstance,
    case_ref: str = _CASE,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 50,
) -> CaseObservablePage:
    """In the order they were added."""
    after = decode_key_cursor(cursor, (int, str, str)) if cursor else None
    rows = activity.observables(
        conn,
        principal,
        case_ref,
        limit=limit + 1,
        after=(after[0], after[1], after[2]) if after else None,
        list_limit=instance.settings.correlation_list_limit,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    token = (
        encode_key_cursor([rows[-1]["added_at"], rows[-1]["kind"], rows[-1]["value"]])
        if more
        else None
    )
    return CaseObservablePage(items=[CaseObservablePublic.of(r) for r in rows], next=token)


@router.post(
    "/cases/{case_ref}/observables",
    response_model=CaseObservablePublic,
    status_code=201,
    summary="Link an observable to a case",
    responses={**_WRITE, **problem_responses(409)},
)
def add_observable(
    conn: DbConn,
    principal: CurrentPrincipal,
    instance: CurrentInstance,
    body: CaseObservableAdd,
    case_ref: str = _CASE,
) -> CaseObservablePublic:
    """The value is normalized; the answer shows its correlations and sightings."""
    row = activity.add_observable(
        conn,
        principal,
        case_ref,
        body.value,
        kind=body.kind,
        stix_id=body.stix_id,
        note=body.note,
        list_limit=instance.settings.correlation_list_limit,
    )
    return CaseObservablePublic.of(row)


@router.delete(
    "/cases/{case_ref}/observables",
    status_code=204,
    summary="Unlink an observable from a case",
    responses=_WRITE,
)
def remove_observable(
    conn: DbConn,
    principal: CurrentPrincipal,
    value: Annotated[str, Query(max_length=2000)],
    kind: Annotated[str | None, Query(max_length=40)] = None,
    case_ref: str = _CASE,
) -> Response:
    activity.remove_observable(conn, principal, case_ref, value, kind)
    return Response(status_code=204)


@router.get(
    "/case-templates",
    response_model=list[CaseTemplatePublic],
    summary="The case templates and their preset tasks",
)
def list_templates(principal: CurrentPrincipal) -> list[CaseTemplatePublic]:
    return [CaseTemplatePublic.of(t) for t in TEMPLATES.values()]
