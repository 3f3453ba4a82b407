"""SQL for the audit log."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select

from qalqan.store.tables import audit_log

__all__ = ["append_entry", "recent_entries"]


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


def recent_entries(conn: Connection, limit: int = 100) -> list[dict[str, object]]:
    """The newest entries first."""
    rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]
