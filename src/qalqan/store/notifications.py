"""SQL of notifications: events an org is told about (a sighting of its indicator, ...), newest
first, each read or not. An org only ever reads its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from qalqan.store.tables import notifications as nt

__all__ = ["NotificationRow", "insert_notifications", "list_notifications", "mark_read"]

_CHUNK = 5000


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


def insert_notifications(
    conn: Connection, rows: Sequence[tuple[str, str, str | None, str, int]]
) -> None:
    """Rows of (org_id, kind, subject, detail JSON, created_at)."""
    if rows:
        names = ("org_id", "kind", "subject", "detail", "created_at")
        conn.execute(nt.insert(), [dict(zip(names, row, strict=True)) for row in rows])


def list_notifications(
    conn: Connection, org_id: str, *, unread: bool | None, before: int | None, limit: int
) -> list[NotificationRow]:
    """One keyset page of the org's notifications, newest first (``unread`` True: only unread,
    False: only read, None: both)."""
    stmt: Any = select(*nt.c).where(nt.c.org_id == org_id)
    if unread is True:
        stmt = stmt.where(nt.c.read_at.is_(None))
    elif unread is False:
        stmt = stmt.where(nt.c.read_at.is_not(None))
    if before is not None:
        stmt = stmt.where(nt.c.id < before)
    stmt = stmt.order_by(nt.c.id.desc()).limit(limit)
    return [NotificationRow(*row) for row in conn.execute(stmt)]


def mark_read(
    conn: Connection, org_id: str, at: int, *, ids: Sequence[int] = (), up_to: int | None = None
) -> int:
    """Mark the org's unread notifications ``ids``, and all up to id ``up_to``, read at ``at``;
    how many changed."""
    changed = 0
    base = update(nt).where(nt.c.org_id == org_id, nt.c.read_at.is_(None)).values(read_at=at)
    unique = sorted(set(ids))
    for i in range(0, len(unique), _CHUNK):
        changed += conn.execute(base.where(nt.c.id.in_(unique[i : i + _CHUNK]))).rowcount
    if up_to is not None:
        changed += conn.execute(base.where(nt.c.id <= up_to)).rowcount
    return changed
