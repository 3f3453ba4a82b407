"""SQL of notifications: events an org is told about (a sighting of its indicator, ...), newest
first, each read or not. An org only ever reads its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, exists, or_, select, update

from qalqan.store.tables import case_tasks
from qalqan.store.tables import notifications as nt

__all__ = [
    "NotificationRow",
    "insert_notifications",
    "insert_personal_notifications",
    "list_notifications",
    "mark_read",
    "tasks_coming_due",
]

_CHUNK = 5000
_COLUMNS = (nt.c.id, nt.c.org_id, nt.c.kind, nt.c.subject, nt.c.detail, nt.c.created_at,
            nt.c.read_at, nt.c.user_id)  # fmt: skip


@dataclass(frozen=True, slots=True)
class NotificationRow:
    """A stored notification (``detail`` is JSON text)."""

    id: int
    org_id: str
    kind: str
    subject: str | None
    detail: str
    created_at: int
    read_at: int | None
    user_id: str | None


def insert_notifications(
    conn: Connection, rows: Sequence[tuple[str, str, str | None, str, int]]
) -> None:
    """Rows of (org_id, kind, subject, detail JSON, created_at)."""
    if rows:
        names = ("org_id", "kind", "subject", "detail", "created_at")
        conn.execute(nt.insert(), [dict(zip(names, row, strict=True)) for row in rows])


def insert_personal_notifications(
    conn: Connection, rows: Sequence[tuple[str, str, str, str | None, str, int]]
) -> None:
    """Rows of (org_id, user_id, kind, subject, detail JSON, created_at): each for one user."""
    if rows:
        names = ("org_id", "user_id", "kind", "subject", "detail", "created_at")
        conn.execute(nt.insert(), [dict(zip(names, row, strict=True)) for row in rows])


def _readers(org_id: str, user_id: str | None) -> Any:
    """The org's notifications a user reads: the org's own and those for that user."""
    mine = (
        nt.c.user_id.is_(None)
        if user_id is None
        else or_(nt.c.user_id.is_(None), nt.c.user_id == user_id)
    )
    return and_(nt.c.org_id == org_id, mine)


def list_notifications(
    conn: Connection,
    org_id: str,
    *,
    user_id: str | None = None,
    unread: bool | None,
    before: int | None,
    limit: int,
) -> list[NotificationRow]:
    """One keyset page of the notifications a user of the org reads (the org's and the user's
    own), newest first (``unread`` True: only unread, False: only read, None: both)."""
    stmt: Any = select(*_COLUMNS).where(_readers(org_id, user_id))
    if unread is True:
        stmt = stmt.where(nt.c.read_at.is_(None))
    elif unread is False:
        stmt = stmt.where(nt.c.read_at.is_not(None))
    if before is not None:
        stmt = stmt.where(nt.c.id < before)
    stmt = stmt.order_by(nt.c.id.desc()).limit(limit)
    return [NotificationRow(*row) for row in conn.execute(stmt)]


def mark_read(
    conn: Connection,
    org_id: str,
    at: int,
    *,
    user_id: str | None = None,
    ids: Sequence[int] = (),
    up_to: int | None = None,
) -> int:
    """Mark the unread notifications ``ids`` a user of the org reads, and all up to id
    ``up_to``, read at ``at``; how many changed."""
    changed = 0
    base = update(nt).where(_readers(org_id, user_id), nt.c.read_at.is_(None)).values(read_at=at)
    unique = sorted(set(ids))
    for i in range(0, len(unique), _CHUNK):
        changed += conn.execute(base.where(nt.c.id.in_(unique[i : i + _CHUNK]))).rowcount
    if up_to is not None:
        changed += conn.execute(base.where(nt.c.id <= up_to)).rowcount
    return changed


def tasks_coming_due(
    conn: Connection, until: int, *, open_statuses: Sequence[str], not_notified_kind: str
) -> list[tuple[str, str, str, str, int]]:
    """(task id, case id, assignee user id, title, due_at) of open, assigned tasks due by
    ``until`` whose assignee has no ``not_notified_kind`` notification about them yet."""
    told = exists().where(
        nt.c.kind == not_notified_kind,
        nt.c.subject == case_tasks.c.id,
        nt.c.user_id == case_tasks.c.assignee_user_id,
    )
    stmt = select(
        case_tasks.c.id,
        case_tasks.c.case_id,
        case_tasks.c.assignee_user_id,
        case_tasks.c.title,
        case_tasks.c.due_at,
    ).where(
        case_tasks.c.due_at.is_not(None),
        case_tasks.c.due_at <= until,
        case_tasks.c.assignee_user_id.is_not(None),
        case_tasks.c.status.in_(list(open_statuses)),
        ~told,
    )
    return [(str(a), str(b), str(c), str(d), int(e)) for a, b, c, d, e in conn.execute(stmt)]
