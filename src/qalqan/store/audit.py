"""SQL for the audit log."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from qalqan.store.tables import audit_log

__all__ = ["AuditEntry", "append_entry", "recent_entries"]


def append_entry(
    conn: Connection,
    *,
    at: int,
    actor_user_id: str | None,
    actor_org_id: str | None,
    action: str,
    target: str | None,
    detail: str,
) -> None:
    """Append one audit entry."""
    conn.execute(
        insert(audit_log).values(
            at=at,
            actor_user_id=actor_user_id,
            actor_org_id=actor_org_id,
            action=action,
            target=target,
            detail=detail,
        )
    )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: int
    actor_user_id: str | None
    actor_org_id: str | None
    action: str
    target: str | None
    detail: str


def recent_entries(conn: Connection, limit: int = 100) -> list[AuditEntry]:
    """The newest entries first."""
    c = audit_log.c
    stmt = select(c.id, c.at, c.actor_user_id, c.actor_org_id, c.action, c.target, c.detail)
    return [AuditEntry(*r) for r in conn.execute(stmt.order_by(c.id.desc()).limit(limit))]
