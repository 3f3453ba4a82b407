"""Cases and their parts in SQL: cases, participants, assignees, labels, tasks and their work
log, timeline, comments and observables.

Every read of a case puts :func:`qalqan.policy.case_visible_to` in its ``WHERE`` clause before
``LIMIT``; lists page by keyset (``updated_at`` descending, then ``id``), never by offset. The
only unfiltered reads, :func:`written_case` and :func:`written_task`, hand back to a writer what
it has just written (a change may take the case out of the writer's sight, e.g. to TLP:RED).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, insert, or_, select, update

from qalqan.domain.principal import Principal
from qalqan.policy import case_visible_to
from qalqan.store.tables import (
    case_assignees,
    case_comments,
    case_labels,
    case_observables,
    case_participants,
    case_task_log,
    case_tasks,
    case_timeline,
    cases,
    orgs,
    users,
)

__all__ = [
    "OPEN_TASK_STATUSES",
    "CaseFilter",
    "CaseRow",
    "ParticipantRow",
    "TaskFilter",
    "TaskRow",
    "add_assignee",
    "add_comment",
    "add_labels",
    "add_observable",
    "add_participant",
    "add_task",
    "add_task_log",
    "add_timeline",
    "case_labels_of",
    "get_case",
    "get_task",
    "insert_case",
    "like_pattern",
    "list_assignees",
    "list_cases",
    "list_comments",
    "list_observables",
    "list_participants",
    "list_task_log",
    "list_tasks",
    "list_timeline",
    "next_number",
    "participant_role",
    "remove_assignee",
    "remove_labels",
    "remove_observable",
    "remove_participant",
    "set_participant_role",
    "tasks_of_case",
    "touch_case",
    "update_case",
    "update_task",
    "user_of",
    "visible_role",
    "written_case",
    "written_task",
]

OPEN_TASK_STATUSES: tuple[str, ...] = ("open", "in-progress")


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One case as stored (JSON columns still as text)."""

    id: str
    number: int
    title: str
    description: str
    severity: int
    tlp: int
    pap: int
    status: str
    resolution: str | None
    owner_org_id: str
    template: str | None
    attack_techniques: str
    custom_fields: str
    created_at: int
    created_by: str | None
    updated_at: int
    closed_at: int | None


@dataclass(frozen=True, slots=True)
class ParticipantRow:
    org_id: str
    org_name: str
    role: str
    added_at: int
    added_by: str | None


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: str
    case_id: str
    title: str
    description: str
    status: str
    org_id: str | None
    assignee_user_id: str | None
    due_at: int | None
    position: int
    created_at: int
    created_by: str | None
    updated_at: int
    closed_at: int | None


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """What a case list keeps; every field narrows it (None: no narrowing)."""

    statuses: Sequence[str] | None = None
    org_id: str | None = None
    assignee_user_id: str | None = None
    overdue_at: int | None = None  # keep cases with an open task due before this time (µs)
    label: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class TaskFilter:
    statuses: Sequence[str] | None = None
    assignee_user_id: str | None = None
    overdue_at: int | None = None
    case_id: str | None = None


_CASE_COLUMNS = [cases.c[name] for name in CaseRow.__slots__]
_TASK_COLUMNS = [case_tasks.c[name] for name in TaskRow.__slots__]


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE ... ESCAPE '\\'``: the text's ``%``, ``_`` and ``\\`` match
    themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def next_number(conn: Connection) -> int:
    """The next human-friendly case number of the node (callers hold the write lock)."""
    current = conn.execute(select(func.max(cases.c.number))).scalar()
    return int(current or 0) + 1


def insert_case(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(cases).values(**values))


def update_case(conn: Connection, case_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(cases).where(cases.c.id == case_id).values(**values))


def touch_case(conn: Connection, case_id: str, at: int) -> None:
    """Move the case to the top of ``updated_at`` order."""
    conn.execute(update(cases).where(cases.c.id == case_id).values(updated_at=at))


def get_case(
    conn: Connection, principal: Principal, *, case_id: str | None = None, number: int | None = None
) -> CaseRow | None:
    """The case with this id or number, if the principal's org takes part in it."""
    stmt = select(*_CASE_COLUMNS).where(case_visible_to(principal, cases))
    if case_id is not None:
        stmt = stmt.where(cases.c.id == case_id)
    elif number is not None:
        stmt = stmt.where(cases.c.number == number)
    else:
        return None
    row = conn.execute(stmt).first()
    return CaseRow(*row) if row is not None else None


def written_case(conn: Connection, case_id: str) -> CaseRow:
    """The case as stored, for the caller that has just written it (and could see it before)."""
    row = conn.execute(select(*_CASE_COLUMNS).where(cases.c.id == case_id)).one()
    return CaseRow(*row)


def visible_role(conn: Connection, principal: Principal, case_id: str) -> str | None:
    """The role of the principal's org in the case (lead, contributor, observer), or None when
    the principal may not see the case (missing, not a participant, or TLP:RED and the user is
    not named in it): what every path reaching a case by id asks first."""
    role = conn.execute(
        select(case_participants.c.role)
        .join(cases, cases.c.id == case_participants.c.case_id)
        .where(
            case_participants.c.case_id == case_id,
            case_participants.c.org_id == principal.org_id,
            case_visible_to(principal, cases),
        )
    ).scalar()
    return str(role) if role is not None else None


def _open_task_due_before(at: int) -> Any:
    return exists().where(
        case_tasks.c.case_id == cases.c.id,
        case_tasks.c.status.in_(OPEN_TASK_STATUSES),
        case_tasks.c.due_at.is_not(None),
        case_tasks.c.due_at < at,
    )


def list_cases(
    conn: Connection,
    principal: Principal,
    f: CaseFilter,
    *,
    limit: int,
    before: tuple[int, str] | None = None,
) -> list[CaseRow]:
    """Visible cases, most recently updated first; ``before`` is ``(updated_at, id)`` of the
    last case of the previous page."""
    stmt = select(*_CASE_COLUMNS).where(case_visible_to(principal, cases))
    if f.statuses:
        stmt = stmt.where(cases.c.status.in_(list(f.statuses)))
    if f.org_id is not None:
        stmt = stmt.where(
            exists().where(
                case_participants.c.case_id == cases.c.id, case_participants.c.org_id == f.org_id
            )
        )
    if f.assignee_user_id is not None:
        stmt = stmt.where(
            or_(
                exists().where(
                    case_assignees.c.case_id == cases.c.id,
                    case_assignees.c.user_id == f.assignee_user_id,
                ),
                exists().where(
                    case_tasks.c.case_id == cases.c.id,
                    case_tasks.c.assignee_user_id == f.assignee_user_id,
                ),
            )
        )
    if f.overdue_at is not None:
        stmt = stmt.where(_open_task_due_before(f.overdue_at))
    if f.label is not None:
        stmt = stmt.where(
            exists().where(case_labels.c.case_id == cases.c.id, case_labels.c.label == f.label)
        )
    if f.text:
        pattern = like_pattern(f.text.lower())
        stmt = stmt.where(
            or_(
                func.lower(cases.c.title).like(pattern, escape="\\"),
                func.lower(cases.c.description).like(pattern, escape="\\"),
            )
        )
    if before is not None:
        at, case_id = before
        stmt = stmt.where(
            or_(cases.c.updated_at < at, and_(cases.c.updated_at == at, cases.c.id < case_id))
        )
    stmt = stmt.order_by(cases.c.updated_at.desc(), cases.c.id.desc()).limit(limit)
    return [CaseRow(*r) for r in conn.execute(stmt)]


# --- participants, assignees, labels ----------------------------------------------------------


def participant_role(conn: Connection, case_id: str, org_id: str) -> str | None:
    """The org's role in the case, or None if it takes no part."""
    role = conn.execute(
        select(case_participants.c.role).where(
            case_participants.c.case_id == case_id, case_participants.c.org_id == org_id
        )
    ).scalar()
    return str(role) if role is not None else None


def list_participants(conn: Connection, case_id: str) -> list[ParticipantRow]:
    stmt = (
        select(
            case_participants.c.org_id,
            orgs.c.name,
            case_participants.c.role,
            case_participants.c.added_at,
            case_participants.c.added_by,
        )
        .join(orgs, orgs.c.id == case_participants.c.org_id)
        .where(case_participants.c.case_id == case_id)
        .order_by(case_participants.c.added_at, orgs.c.name)
    )
    return [ParticipantRow(*r) for r in conn.execute(stmt)]


def add_participant(
    conn: Connection, case_id: str, org_id: str, role: str, at: int, by: str | None
) -> None:
    conn.execute(
        insert(case_participants).values(
            case_id=case_id, org_id=org_id, role=role, added_at=at, added_by=by
        )
    )


def set_participant_role(conn: Connection, case_id: str, org_id: str, role: str) -> None:
    conn.execute(
        update(case_participants)
        .where(case_participants.c.case_id == case_id, case_participants.c.org_id == org_id)
        .values(role=role)
    )


def remove_participant(conn: Connection, case_id: str, org_id: str) -> None:
    """Remove the org, its users' case assignments and its users' task assignments."""
    conn.execute(
        delete(case_assignees).where(
            case_assignees.c.case_id == case_id,
            case_assignees.c.user_id.in_(select(users.c.id).where(users.c.org_id == org_id)),
        )
    )
    conn.execute(
        update(case_tasks)
        .where(case_tasks.c.case_id == case_id, case_tasks.c.org_id == org_id)
        .values(org_id=None, assignee_user_id=None)
    )
    conn.execute(
        delete(case_participants).where(
            case_participants.c.case_id == case_id, case_participants.c.org_id == org_id
        )
    )


def user_of(conn: Connection, ref: str) -> tuple[str, str, str] | None:
    """``(id, email, org_id)`` of the enabled user whose id or email is ``ref``."""
    row = conn.execute(
        select(users.c.id, users.c.email, users.c.org_id).where(
            or_(users.c.id == ref, users.c.email == ref.lower()), users.c.disabled.is_(False)
        )
    ).first()
    return (str(row[0]), str(row[1]), str(row[2])) if row is not None else None


def list_assignees(conn: Connection, case_id: str) -> list[tuple[str, str, str]]:
    """``(user id, email, org id)`` of the case's assignees, by email."""
    stmt = (
        select(users.c.id, users.c.email, users.c.org_id)
        .join(case_assignees, case_assignees.c.user_id == users.c.id)
        .where(case_assignees.c.case_id == case_id)
        .order_by(users.c.email)
    )
    return [(str(a), str(b), str(c)) for a, b, c in conn.execute(stmt)]


def add_assignee(conn: Connection, case_id: str, user_id: str) -> None:
    conn.execute(insert(case_assignees).values(case_id=case_id, user_id=user_id))


def remove_assignee(conn: Connection, case_id: str, user_id: str) -> None:
    conn.execute(
        delete(case_assignees).where(
            case_assignees.c.case_id == case_id, case_assignees.c.user_id == user_id
        )
    )


def case_labels_of(conn: Connection, case_ids: Sequence[str]) -> dict[str, list[str]]:
    """Labels of each case, sorted; one statement for a page of cases."""
    found: dict[str, list[str]] = {case_id: [] for case_id in case_ids}
    if case_ids:
        stmt = (
            select(case_labels.c.case_id, case_labels.c.label)
            .where(case_labels.c.case_id.in_(list(case_ids)))
            .order_by(case_labels.c.case_id, case_labels.c.label)
        )
        for case_id, label in conn.execute(stmt):
            found[str(case_id)].append(str(label))
    return found


def add_labels(conn: Connection, case_id: str, labels: Sequence[str]) -> None:
    if labels:
        conn.execute(insert(case_labels), [{"case_id": case_id, "label": lb} for lb in labels])


def remove_labels(conn: Connection, case_id: str, labels: Sequence[str]) -> None:
    if labels:
        conn.execute(
            delete(case_labels).where(
                case_labels.c.case_id == case_id, case_labels.c.label.in_(list(labels))
            )
        )


# --- tasks --------------------------------------------------------------------------------


def add_task(conn: Connection, values: dict[str, Any]) -> None:
    if "position" not in values:
        top = conn.execute(
            select(func.max(case_tasks.c.position)).where(case_tasks.c.case_id == values["case_id"])
        ).scalar()
        values = {**values, "position": int(top if top is not None else -1) + 1}
    conn.execute(insert(case_tasks).values(**values))


def update_task(conn: Connection, task_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(case_tasks).where(case_tasks.c.id == task_id).values(**values))


def get_task(conn: Connection, principal: Principal, task_id: str) -> TaskRow | None:
    """The task, if its case is visible to the principal."""
    stmt = (
        select(*_TASK_COLUMNS)
        .join(cases, cases.c.id == case_tasks.c.case_id)
        .where(case_tasks.c.id == task_id, case_visible_to(principal, cases))
    )
    row = conn.execute(stmt).first()
    return TaskRow(*row) if row is not None else None


def written_task(conn: Connection, task_id: str) -> TaskRow:
    """The task as stored, for the caller that has just written it (and could see it before)."""
    row = conn.execute(select(*_TASK_COLUMNS).where(case_tasks.c.id == task_id)).one()
    return TaskRow(*row)


def tasks_of_case(conn: Connection, case_id: str, limit: int) -> list[TaskRow]:
    """The case's tasks in their order (the caller has checked the case is visible)."""
    stmt = (
        select(*_TASK_COLUMNS)
        .where(case_tasks.c.case_id == case_id)
        .order_by(case_tasks.c.position, case_tasks.c.id)
        .limit(limit)
    )
    return [TaskRow(*r) for r in conn.execute(stmt)]


def list_tasks(
    conn: Connection,
    principal: Principal,
    f: TaskFilter,
    *,
    limit: int,
    before: tuple[int, str] | None = None,
) -> list[TaskRow]:
    """Tasks of visible cases, most recently updated first; ``before`` is ``(updated_at, id)``
    of the last task of the previous page."""
    stmt = (
        select(*_TASK_COLUMNS)
        .join(cases, cases.c.id == case_tasks.c.case_id)
        .where(case_visible_to(principal, cases))
    )
    if f.statuses:
        stmt = stmt.where(case_tasks.c.status.in_(list(f.statuses)))
    if f.assignee_user_id is not None:
        stmt = stmt.where(case_tasks.c.assignee_user_id == f.assignee_user_id)
    if f.case_id is not None:
        stmt = stmt.where(case_tasks.c.case_id == f.case_id)
    if f.overdue_at is not None:
        stmt = stmt.where(
            case_tasks.c.status.in_(OPEN_TASK_STATUSES),
            case_tasks.c.due_at.is_not(None),
            case_tasks.c.due_at < f.overdue_at,
        )
    if before is not None:
        at, task_id = before
        stmt = stmt.where(
            or_(
                case_tasks.c.updated_at < at,
                and_(case_tasks.c.updated_at == at, case_tasks.c.id < task_id),
            )
        )
    stmt = stmt.order_by(case_tasks.c.updated_at.desc(), case_tasks.c.id.desc()).limit(limit)
    return [TaskRow(*r) for r in conn.execute(stmt)]


def add_task_log(
    conn: Connection, task_id: str, at: int, user_id: str | None, org_id: str, text: str
) -> int:
    result = conn.execute(
        insert(case_task_log).values(
            task_id=task_id, at=at, user_id=user_id, org_id=org_id, text=text
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def list_task_log(conn: Connection, task_id: str, limit: int) -> list[dict[str, Any]]:
    stmt = (
        select(case_task_log)
        .where(case_task_log.c.task_id == task_id)
        .order_by(case_task_log.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(stmt)]


# --- timeline, comments, observables ------------------------------------------------------


def add_timeline(conn: Connection, values: dict[str, Any]) -> int:
    result = conn.execute(insert(case_timeline).values(**values))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def list_timeline(
    conn: Connection, case_id: str, *, limit: int, before: int | None = None
) -> list[dict[str, Any]]:
    """Newest entries first; ``before`` is the id of the last entry of the previous page."""
    stmt = select(case_timeline).where(case_timeline.c.case_id == case_id)
    if before is not None:
        stmt = stmt.where(case_timeline.c.id < before)
    stmt = stmt.order_by(case_timeline.c.id.desc()).limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def add_comment(conn: Connection, values: dict[str, Any]) -> int:
    result = conn.execute(insert(case_comments).values(**values))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def list_comments(
    conn: Connection, case_id: str, *, limit: int, after: int | None = None
) -> list[dict[str, Any]]:
    """Oldest comments first; ``after`` is the id of the last comment of the previous page."""
    stmt = select(case_comments).where(case_comments.c.case_id == case_id)
    if after is not None:
        stmt = stmt.where(case_comments.c.id > after)
    stmt = stmt.order_by(case_comments.c.id).limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def add_observable(conn: Connection, values: dict[str, Any]) -> bool:
    """Link an observable to a case; False when the case already has it."""
    present = conn.execute(
        select(case_observables.c.case_id).where(
            case_observables.c.case_id == values["case_id"],
            case_observables.c.kind == values["kind"],
            case_observables.c.value == values["value"],
        )
    ).first()
    if present is not None:
        return False
    conn.execute(insert(case_observables).values(**values))
    return True


def remove_observable(conn: Connection, case_id: str, kind: str, value: str) -> bool:
    result = conn.execute(
        delete(case_observables).where(
            case_observables.c.case_id == case_id,
            case_observables.c.kind == kind,
            case_observables.c.value == value,
        )
    )
    return bool(result.rowcount)


def list_observables(
    conn: Connection, case_id: str, *, limit: int, after: tuple[int, str, str] | None = None
) -> list[dict[str, Any]]:
    """In the order they were added; ``after`` is ``(added_at, kind, value)`` of the last one
    of the previous page."""
    o = case_observables
    stmt = select(o).where(o.c.case_id == case_id)
    if after is not None:
        at, kind, value = after
        stmt = stmt.where(
            or_(
                o.c.added_at > at,
                and_(o.c.added_at == at, o.c.kind > kind),
                and_(o.c.added_at == at, o.c.kind == kind, o.c.value > value),
            )
        )
    stmt = stmt.order_by(o.c.added_at, o.c.kind, o.c.value).limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]
