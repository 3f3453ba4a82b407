"""SQL of evidence: stored files, evidence items of cases, their chain of custody."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, insert, select

from qalqan.store.tables import case_timeline
from qalqan.store.tables import evidence as items
from qalqan.store.tables import evidence_custody as custody
from qalqan.store.tables import evidence_files as files

__all__ = [
    "CustodyEntry",
    "EvidenceRecord",
    "add_custody",
    "add_file",
    "add_item",
    "add_timeline_entry",
    "custody_of",
    "get_item",
    "list_items",
]


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    id: str
    case_id: str
    sha256: str
    name: str
    media_type: str
    size: int
    description: str
    collected_by: str
    collected_at: int | None
    collection_method: str
    uploaded_by: str | None
    uploaded_org_id: str
    created_at: int


@dataclass(frozen=True, slots=True)
class CustodyEntry:
    id: int
    at: int
    actor_user_id: str | None
    actor_org_id: str | None
    action: str
    detail: str


_ITEM_COLUMNS = tuple(items.c[name] for name in EvidenceRecord.__dataclass_fields__)


def add_file(conn: Connection, sha256: str, size: int, at: int) -> None:
    """Record a stored file (once: the same bytes uploaded again change nothing)."""
    if conn.execute(select(files.c.sha256).where(files.c.sha256 == sha256)).first() is None:
        conn.execute(insert(files).values(sha256=sha256, size=size, stored_at=at))


def add_item(conn: Connection, record: EvidenceRecord) -> None:
    """Insert an evidence item."""
    conn.execute(insert(items).values(**{c.name: getattr(record, c.name) for c in _ITEM_COLUMNS}))


def get_item(conn: Connection, evidence_id: str) -> EvidenceRecord | None:
    """One evidence item, whoever asks (callers check the case's participants)."""
    row = conn.execute(select(*_ITEM_COLUMNS).where(items.c.id == evidence_id)).first()
    return None if row is None else EvidenceRecord(*row)


def list_items(
    conn: Connection, case_id: str, after: tuple[int, str] | None, limit: int
) -> list[EvidenceRecord]:
    """A keyset page of a case's evidence, oldest first."""
    stmt = select(*_ITEM_COLUMNS).where(items.c.case_id == case_id)
    if after is not None:
        at, key = after
        stmt = stmt.where(
            (items.c.created_at > at) | ((items.c.created_at == at) & (items.c.id > key))
        )
    stmt = stmt.order_by(items.c.created_at, items.c.id).limit(limit)
    return [EvidenceRecord(*row) for row in conn.execute(stmt)]


def add_custody(
    conn: Connection,
    evidence_id: str,
    *,
    at: int,
    actor_user_id: str | None,
    actor_org_id: str | None,
    action: str,
    detail: Mapping[str, object],
) -> None:
    """Append one entry to an item's chain of custody."""
    conn.execute(
        insert(custody).values(
            evidence_id=evidence_id,
            at=at,
            actor_user_id=actor_user_id,
            actor_org_id=actor_org_id,
            action=action,
            detail=orjson.dumps(dict(detail)).decode(),
        )
    )


def custody_of(conn: Connection, evidence_id: str) -> list[CustodyEntry]:
    """An item's chain of custody, oldest first."""
    stmt = (
        select(
            custody.c.id,
            custody.c.at,
            custody.c.actor_user_id,
            custody.c.actor_org_id,
            custody.c.action,
            custody.c.detail,
        )
        .where(custody.c.evidence_id == evidence_id)
        .order_by(custody.c.id)
    )
    return [CustodyEntry(*row) for row in conn.execute(stmt)]


def add_timeline_entry(
    conn: Connection,
    case_id: str,
    *,
    at: int,
    actor_user_id: str | None,
    actor_org_id: str | None,
    action: str,
    text: str,
    detail: Mapping[str, object],
) -> None:
    """An automatic entry on the case's timeline."""
    conn.execute(
        insert(case_timeline).values(
            case_id=case_id,
            at=at,
            event_time=None,
            kind="auto",
            action=action,
            actor_user_id=actor_user_id,
            actor_org_id=actor_org_id,
            text=text,
            detail=orjson.dumps(dict(detail)).decode(),
        )
    )
