"""Tasks of cases: add, change (title, status, assignee, org, due date), keep a work log, and
list them across the cases the caller's org takes part in.

A task is *overdue* when it is still open (``open`` or ``in-progress``) and its due date has
passed; a case is overdue when any of its tasks is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection

from qalqan.cases.base import (
    LONG_TEXT_MAX,
    TITLE_MAX,
    check_text,
    is_uuid,
    load_case,
    new_id,
    note_change,
    optional_text,
    require,
)
from qalqan.cases.service import resolve_org
from qalqan.domain.principal import Principal
from qalqan.errors import InvalidInput, NotFound
from qalqan.notify import events as case_events
from qalqan.policy import may_edit_case
from qalqan.store import cases as store
from qalqan.store.clock import now_us

__all__ = [
    "TASK_STATUSES",
    "TaskChanges",
    "TaskSpec",
    "add_task",
    "list_tasks",
    "log_work",
    "task_log",
    "update_task",
]

TASK_STATUSES: Final = ("open", "in-progress", "done", "cancelled")
_CLOSED: Final = ("done", "cancelled")
_LOG_LIMIT = 500
# Unset a task's assignee, org or due date by sending this.
_CLEAR = ""


@dataclass(frozen=True, slots=True)
class TaskSpec:
    title: str
    description: str = ""
    assignee: str | None = None  # user id or email
    org: str | None = None  # org id or name; default: the assignee's org
    due_at: int | None = None  # µs


@dataclass(frozen=True, slots=True)
class TaskChanges:
    """None leaves a field as it is; ``""`` clears the assignee or org; ``clear_due`` the due
    date."""

    title: str | None = None
    description: str | None = None
    status: str | None = None
    assignee: str | None = None
    org: str | None = None
    due_at: int | None = None
    clear_due: bool = False


def _status(value: str) -> str:
    if value not in TASK_STATUSES:
        raise InvalidInput(
            f"status {value[:40]!r}: use one of {', '.join(TASK_STATUSES)}", field="status"
        )
    return value


def _participants(conn: Connection, case_id: str) -> dict[str, str]:
    return {p.org_id: p.org_name for p in store.list_participants(conn, case_id)}


def _assignee(conn: Connection, case_id: str, ref: str) -> tuple[str, str, str]:
    user = store.user_of(conn, ref) if "\x00" not in ref and len(ref) <= 320 else None
    if user is None or user[2] not in _participants(conn, case_id):
        raise InvalidInput(
            f"assignee: {ref[:80]!r} is no user of an org taking part in the case",
            field="assignee",
        )
    return user


def _org(conn: Connection, case_id: str, ref: str) -> str:
    org = resolve_org(conn, ref)
    if org.id not in _participants(conn, case_id):
        raise InvalidInput(f"org: {org.name} takes no part in the case", field="org")
    return org.id


def add_task(conn: Connection, principal: Principal, ref: str, spec: TaskSpec) -> store.TaskRow:
    """Add a task at the end of the case's list."""
    access = load_case(conn, principal, ref)
    require(may_edit_case(principal, access.role), "add tasks to this case")
    case_id = access.case.id
    title = check_text("title", spec.title.strip(), TITLE_MAX, required=True)
    description = check_text("description", spec.description, LONG_TEXT_MAX)
    user = _assignee(conn, case_id, spec.assignee) if spec.assignee else None
    org_id = _org(conn, case_id, spec.org) if spec.org else (user[2] if user else None)
    at = now_us()
    task_id = new_id()
    store.add_task(
        conn,
        {
            "id": task_id,
            "case_id": case_id,
            "title": title,
            "description": description,
            "status": "open",
            "org_id": org_id,
            "assignee_user_id": user[0] if user else None,
            "due_at": spec.due_at,
            "created_at": at,
            "created_by": principal.user_id,
            "updated_at": at,
            "closed_at": None,
        },
    )
    note_change(
        conn,
        principal,
        case_id,
        "case.task.add",
        f"task added: {title}",
        {"task": task_id, "assignee": user[1] if user else None},
        at=at,
    )
    if user is not None and user[0] != principal.user_id:
        case_events.task_assigned(conn, case_id, task_id, title, spec.due_at, user[0])
    return store.written_task(conn, task_id)


def _load_task(conn: Connection, principal: Principal, task_id: str) -> store.TaskRow:
    task = store.get_task(conn, principal, task_id.lower()) if is_uuid(task_id.lower()) else None
    if task is None:
        raise NotFound(f"no task {task_id[:80]!r}", id=task_id[:80])
    return task


def update_task(
    conn: Connection, principal: Principal, task_id: str, changes: TaskChanges
) -> store.TaskRow:
    """Change a task; the change is on the case's timeline."""
    task = _load_task(conn, principal, task_id)
    access = load_case(conn, principal, task.case_id)
    require(may_edit_case(principal, access.role), "change tasks of this case")
    values: dict[str, Any] = {}
    if changes.title is not None:
        values["title"] = check_text("title", changes.title.strip(), TITLE_MAX, required=True)
    description = optional_text("description", changes.description, LONG_TEXT_MAX)
    if description is not None:
        values["description"] = description
    at = now_us()
    if changes.status is not None:
        values["status"] = _status(changes.status)
        values["closed_at"] = at if changes.status in _CLOSED else None
    if changes.assignee is not None:
        if changes.assignee == _CLEAR:
            values["assignee_user_id"] = None
        else:
            user = _assignee(conn, task.case_id, changes.assignee)
            values["assignee_user_id"] = user[0]
            if changes.org is None:
                values["org_id"] = user[2]
    if changes.org is not None:
        values["org_id"] = None if changes.org == _CLEAR else _org(conn, task.case_id, changes.org)
    if changes.clear_due:
        values["due_at"] = None
    elif changes.due_at is not None:
        values["due_at"] = changes.due_at
    changed = sorted(k for k, v in values.items() if k != "closed_at" and getattr(task, k) != v)
    if changed:
        store.update_task(conn, task.id, {**values, "updated_at": at})
        what = (
            f"task {values['status']}: {task.title}"
            if changed == ["status"]
            else f"task changed ({', '.join(changed)}): {task.title}"
        )
        note_change(
            conn,
            principal,
            task.case_id,
            "case.task.update",
            what,
            {"task": task.id, "fields": changed, "status": values.get("status")},
            at=at,
        )
        assignee = values.get("assignee_user_id")
        if "assignee_user_id" in changed and assignee not in (None, principal.user_id):
            title, due = values.get("title", task.title), values.get("due_at", task.due_at)
            case_events.task_assigned(conn, task.case_id, task.id, title, due, assignee)
    return store.written_task(conn, task.id)


def log_work(conn: Connection, principal: Principal, task_id: str, text: str) -> dict[str, Any]:
    """Add an entry to a task's work log (anyone who may edit the case)."""
    task = _load_task(conn, principal, task_id)
    access = load_case(conn, principal, task.case_id)
    require(may_edit_case(principal, access.role), "log work on tasks of this case")
    body = check_text("text", text, LONG_TEXT_MAX, required=True)
    at = now_us()
    entry_id = store.add_task_log(conn, task.id, at, principal.user_id, principal.org_id, body)
    store.update_task(conn, task.id, {"updated_at": at})
    note_change(
        conn,
        principal,
        task.case_id,
        "case.task.log",
        f"work logged on task: {task.title}",
        {"task": task.id, "entry": entry_id},
        at=at,
    )
    return {
        "id": entry_id,
        "task_id": task.id,
        "at": at,
        "user_id": principal.user_id,
        "org_id": principal.org_id,
        "text": body,
    }


def task_log(conn: Connection, principal: Principal, task_id: str) -> list[dict[str, Any]]:
    """A task's work log, oldest first (the first 500 entries)."""
    task = _load_task(conn, principal, task_id)
    return store.list_task_log(conn, task.id, _LOG_LIMIT)


def list_tasks(
    conn: Connection,
    principal: Principal,
    f: store.TaskFilter,
    *,
    limit: int,
    before: tuple[int, str] | None = None,
) -> list[store.TaskRow]:
    """One keyset page of tasks of the cases the principal's org takes part in."""
    for status in f.statuses or ():
        _status(status)
    return store.list_tasks(conn, principal, f, limit=limit, before=before)
