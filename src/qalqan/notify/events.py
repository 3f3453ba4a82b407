"""Notifications raised by case work: an org invited to a case, a user assigned to a case or a
task, and a task coming due (checked periodically, once per task and assignee).

Each is written in the caller's transaction, so it exists exactly when the change does; the
dispatcher then carries it to webhooks and e-mail. Detail texts are data, never markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson
from sqlalchemy import Connection, select

from qalqan.domain.handling import TLP
from qalqan.domain.principal import Role
from qalqan.domain.stix import format_timestamp
from qalqan.store import notifications as store
from qalqan.store.clock import now_us
from qalqan.store.tables import cases, orgs, users

__all__ = [
    "CASE_ASSIGNED",
    "CASE_INVITED",
    "TASK_ASSIGNED",
    "TASK_DUE",
    "case_assigned",
    "case_invited",
    "task_assigned",
    "tasks_coming_due",
]

CASE_INVITED: Final = "case.invited"
CASE_ASSIGNED: Final = "case.assigned"
TASK_ASSIGNED: Final = "task.assigned"
TASK_DUE: Final = "task.due"
_OPEN_TASKS: Final = ("open", "in-progress")
_HOUR: Final = 3600 * 1_000_000


def _case(conn: Connection, case_id: str) -> dict[str, Any]:
    found = conn.execute(
        select(cases.c.title, cases.c.tlp, orgs.c.name)
        .join(orgs, orgs.c.id == cases.c.owner_org_id)
        .where(cases.c.id == case_id)
    ).first()
    if found is None:
        return {"case": case_id}
    tlp = "TLP:" + TLP(found[1]).label
    return {"case": case_id, "case_title": found[0], "tlp": tlp, "lead": found[2]}


def _orgs_of(conn: Connection, user_ids: Sequence[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    stmt = select(users.c.id, users.c.org_id).where(users.c.id.in_(sorted(set(user_ids))))
    return {str(u): str(o) for u, o in conn.execute(stmt)}


def _personal(
    conn: Connection, kind: str, subject: str, detail: dict[str, Any], user_ids: Sequence[str]
) -> None:
    now = now_us()
    text = orjson.dumps(detail).decode()
    owners = _orgs_of(conn, user_ids)
    store.insert_personal_notifications(
        conn, [(owners[u], u, kind, subject, text, now) for u in dict.fromkeys(user_ids)
               if u in owners],
    )  # fmt: skip


def case_invited(conn: Connection, case_id: str, org_id: str, role: str) -> None:
    """Tell an org it now takes part in a case, and as what. A TLP:RED case is for the people
    named in it: only the org's admins are told, each personally, and they name who works it."""
    detail = {**_case(conn, case_id), "role": role}
    detail["title"] = detail.get("case_title")
    if detail.get("tlp") == "TLP:" + TLP.RED.label:
        admins = conn.execute(
            select(users.c.id).where(
                users.c.org_id == org_id,
                users.c.disabled.is_(False),
                users.c.role.in_([Role.ORG_ADMIN.value, Role.NODE_ADMIN.value]),
            )
        ).scalars()
        _personal(conn, CASE_INVITED, case_id, detail, [str(u) for u in admins])
        return
    text = orjson.dumps(detail).decode()
    store.insert_notifications(conn, [(org_id, CASE_INVITED, case_id, text, now_us())])


def case_assigned(conn: Connection, case_id: str, user_ids: Sequence[str]) -> None:
    """Tell users they were assigned to a case."""
    if user_ids:
        detail = _case(conn, case_id)
        detail["title"] = detail.get("case_title")
        _personal(conn, CASE_ASSIGNED, case_id, detail, user_ids)


def task_assigned(
    conn: Connection, case_id: str, task_id: str, title: str, due_at: int | None, user_id: str
) -> None:
    """Tell a user they were assigned a task."""
    detail = {**_case(conn, case_id), "task": task_id, "title": title,
              "due": format_timestamp(due_at) if due_at is not None else None}  # fmt: skip
    _personal(conn, TASK_ASSIGNED, task_id, detail, [user_id])


def tasks_coming_due(conn: Connection, *, now: int | None = None, hours: float = 24.0) -> int:
    """Tell each assignee, once, about open tasks due within ``hours`` (or already past due);
    how many notifications were made."""
    now = now_us() if now is None else now
    due = store.tasks_coming_due(
        conn, now + int(hours * _HOUR), open_statuses=_OPEN_TASKS, not_notified_kind=TASK_DUE
    )
    for task_id, case_id, user_id, title, due_at in due:
        detail = {**_case(conn, case_id), "task": task_id, "title": title,
                  "due": format_timestamp(due_at), "overdue": due_at < now}  # fmt: skip
        _personal(conn, TASK_DUE, task_id, detail, [user_id])
    return len(due)
