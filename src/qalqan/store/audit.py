"""SQL for the audit log and its hash chain.

Appending updates the one-row ``audit_head`` first: the update holds the row (PostgreSQL) or
the database's write lock (SQLite) until the appender commits, so appenders take turns and each
entry's ``prev_hash`` is the hash of the entry committed just before it. The node's write turn
(``store.clock.lock_writes``) is taken before the head, always in that order, so two writers
never wait for each other crosswise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, insert, select, update

from qalqan.domain.audit import entry_hash
from qalqan.errors import ConfigurationError
from qalqan.store.clock import lock_writes
from qalqan.store.tables import audit_head, audit_log

__all__ = [
    "AuditEntry",
    "append_entry",
    "chain_head",
    "entries_since",
    "iter_entries",
    "iter_rows",
    "recent_entries",
]


# Built once: appending runs in every write, so it only binds values.
_TAKE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(last_id=audit_head.c.last_id + 1)
    .returning(audit_head.c.last_id, audit_head.c.last_hash)
)
_MOVE_HEAD = update(audit_head).where(audit_head.c.id == 1).values(last_hash=bindparam("digest"))
_INSERT = insert(audit_log)


def append_entry(
    conn: Connection,
    *,
    at: int,
    actor_user_id: str | None,
    actor_org_id: str | None,
    action: str,
    target: str | None,
    detail: str,
) -> int:
    """Append one audit entry to the chain in the caller's transaction; returns its id."""
    if conn.dialect.name != "sqlite":
        # PostgreSQL locks rows: take the write turn first, as every writer does. SQLite has
        # one lock for the whole database, which the head's update takes.
        lock_writes(conn)
    head = conn.execute(_TAKE_HEAD).first()
    if head is None:
        raise ConfigurationError("the audit chain has no head; run the database migrations")
    entry_id, previous = int(head[0]), str(head[1])
    digest = entry_hash(previous, entry_id, at, actor_user_id, actor_org_id, action, target, detail)
    conn.execute(
        _INSERT,
        {
            "id": entry_id,
            "at": at,
            "actor_user_id": actor_user_id,
            "actor_org_id": actor_org_id,
            "action": action,
            "target": target,
            "detail": detail,
            "prev_hash": previous,
            "hash": digest,
        },
    )
    conn.execute(_MOVE_HEAD, {"digest": digest})
    return entry_id


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: int
    actor_user_id: str | None
    actor_org_id: str | None
    action: str
    target: str | None
    detail: str
    prev_hash: str | None = None
    hash: str | None = None


_COLUMNS = (
    audit_log.c.id,
    audit_log.c.at,
    audit_log.c.actor_user_id,
    audit_log.c.actor_org_id,
    audit_log.c.action,
    audit_log.c.target,
    audit_log.c.detail,
    audit_log.c.prev_hash,
    audit_log.c.hash,
)


def recent_entries(conn: Connection, limit: int = 100) -> list[AuditEntry]:
    """The newest entries first."""
    stmt = select(*_COLUMNS).order_by(audit_log.c.id.desc()).limit(limit)
    return [AuditEntry(*r) for r in conn.execute(stmt)]


def iter_entries(
    conn: Connection, *, after: int = 0, since: int | None = None, batch: int = 20_000
) -> Iterator[AuditEntry]:
    """Every entry after id ``after`` (and at or after ``since``, µs), oldest first, read in
    keyset batches."""
    while True:
        stmt = select(*_COLUMNS).where(audit_log.c.id > after)
        if since is not None:
            stmt = stmt.where(audit_log.c.at >= since)
        result = conn.execute(stmt.order_by(audit_log.c.id).limit(batch))
        rows = result.cursor.fetchall() if result.cursor is not None else []
        result.close()
        yield from (AuditEntry(*row) for row in rows)
        if len(rows) < batch:
            return
        after = rows[-1][0]


def iter_rows(conn: Connection, batch: int = 50_000) -> Iterator[tuple[object, ...]]:
    """Every entry as a plain row (the columns of :class:`AuditEntry`), oldest first, in keyset
    batches: the fast path of verification."""
    after = 0
    stmt = select(*_COLUMNS).where(audit_log.c.id > bindparam("after")).order_by(audit_log.c.id)
    stmt = stmt.limit(batch)
    while True:
        result = conn.execute(stmt, {"after": after})
        rows = result.cursor.fetchall() if result.cursor is not None else []
        result.close()
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1][0]


def entries_since(conn: Connection, since: int, batch: int = 20_000) -> Iterator[AuditEntry]:
    """Entries recorded at or after ``since`` (µs), oldest first."""
    return iter_entries(conn, since=since, batch=batch)


def chain_head(conn: Connection) -> tuple[int, str]:
    """``(last_id, last_hash)`` of the chain."""
    row = conn.execute(select(audit_head.c.last_id, audit_head.c.last_hash)).first()
    if row is None:
        raise ConfigurationError("the audit chain has no head; run the database migrations")
    return int(row[0]), str(row[1])
