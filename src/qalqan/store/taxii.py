"""SQL of the TAXII server: collections, status resources, and the object listings it serves.

Every listing takes a ``Principal`` and filters with ``policy.visible_to`` in the WHERE clause
before LIMIT, like every other read path. Pages are keyset pages on ``date_added``, which the
node issues strictly increasing and in commit order, so a client paging while others write
never sees an object twice and never misses one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    delete,
    exists,
    false,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import aliased

from qalqan.domain.principal import Principal
from qalqan.policy import visible_to
from qalqan.store.tables import object_versions as ov
from qalqan.store.tables import taxii_collections as tc
from qalqan.store.tables import taxii_statuses as ts

__all__ = [
    "CollectionRecord",
    "ManifestRow",
    "ObjectQuery",
    "StatusRecord",
    "delete_collection",
    "find_collection",
    "get_status",
    "insert_collection",
    "insert_status",
    "list_collections",
    "manifest_page",
    "object_page",
    "owners_of",
    "withdraw_versions",
]


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    id: str
    alias: str | None
    title: str
    description: str
    types: tuple[str, ...] | None
    max_tlp: int | None
    sharing_group_id: str | None
    writable: bool
    created_at: int


def _collection(row: Any) -> CollectionRecord:
    types = tuple(t for t in row.types.split(",") if t) if row.types else None
    return CollectionRecord(
        row.id,
        row.alias,
        row.title,
        row.description,
        types,
        row.max_tlp,
        row.sharing_group_id,
        row.writable,
        row.created_at,
    )


def list_collections(conn: Connection) -> list[CollectionRecord]:
    """Every stored collection, oldest first."""
    rows = conn.execute(select(tc).order_by(tc.c.created_at, tc.c.title, tc.c.id))
    return [_collection(r) for r in rows]


def find_collection(conn: Connection, ref: str) -> CollectionRecord | None:
    """The stored collection whose id or alias is ``ref``."""
    row = conn.execute(select(tc).where(or_(tc.c.id == ref, tc.c.alias == ref)).limit(1)).first()
    return _collection(row) if row is not None else None


def insert_collection(conn: Connection, c: CollectionRecord, created_by: str | None) -> None:
    conn.execute(
        insert(tc).values(
            id=c.id,
            alias=c.alias,
            title=c.title,
            description=c.description,
            types=",".join(c.types) if c.types else None,
            max_tlp=c.max_tlp,
            sharing_group_id=c.sharing_group_id,
            writable=c.writable,
            created_at=c.created_at,
            created_by=created_by,
        )
    )


def delete_collection(conn: Connection, collection_id: str) -> bool:
    """Remove a stored collection; False if there was none."""
    return conn.execute(delete(tc).where(tc.c.id == collection_id)).rowcount > 0


@dataclass(frozen=True, slots=True)
class StatusRecord:
    id: str
    org_id: str
    collection_id: str
    status: str
    request_timestamp: int
    total_count: int
    success_count: int
    failure_count: int
    pending_count: int
    successes: str
    failures: str
    pendings: str


def insert_status(conn: Connection, s: StatusRecord) -> None:
    conn.execute(
        insert(ts).values(
            id=s.id,
            org_id=s.org_id,
            collection_id=s.collection_id,
            status=s.status,
            request_timestamp=s.request_timestamp,
            total_count=s.total_count,
            success_count=s.success_count,
            failure_count=s.failure_count,
            pending_count=s.pending_count,
            successes=s.successes,
            failures=s.failures,
            pendings=s.pendings,
        )
    )


def get_status(conn: Connection, status_id: str, org_id: str) -> StatusRecord | None:
    """A status resource, only for the org whose request made it."""
    row = conn.execute(select(ts).where(ts.c.id == status_id, ts.c.org_id == org_id)).first()
    return StatusRecord(*row) if row is not None else None


@dataclass(frozen=True, slots=True)
class ObjectQuery:
    """What a TAXII request selects from a collection.

    ``versions`` holds the keywords ``first``, ``last`` and ``all`` and ``modified`` timestamps
    (microseconds); an object version matches when any of them does.
    """

    types: Sequence[str] | None = None
    max_tlp: int | None = None
    sharing_group_id: str | None = None
    ids: Sequence[str] | None = None
    match_types: Sequence[str] | None = None
    versions: Sequence[str | int] = ("last",)
    added_after: int | None = None
    after: int | None = None
    no_spec_version: bool = False


def _version_match(principal: Principal, versions: Sequence[str | int]) -> ColumnElement[bool]:
    if "all" in versions:
        return true()
    clauses: list[ColumnElement[bool]] = []
    if "last" in versions:
        clauses.append(ov.c.is_latest.is_(True))
    if "first" in versions:
        older = aliased(ov)
        clauses.append(
            ~exists().where(
                older.c.stix_id == ov.c.stix_id,
                older.c.modified < ov.c.modified,
                older.c.withdrawn.is_(False),
                visible_to(principal, older),
            )
        )
    stamps = [v for v in versions if isinstance(v, int)]
    if stamps:
        clauses.append(ov.c.modified.in_(stamps))
    return or_(*clauses) if clauses else false()


def _selected(principal: Principal, q: ObjectQuery, columns: Sequence[Any]) -> Select[Any]:
    stmt = select(*columns).where(visible_to(principal, ov), ov.c.withdrawn.is_(False))
    if q.no_spec_version:
        return stmt.where(false())
    if q.types:
        stmt = stmt.where(ov.c.type.in_(list(q.types)))
    if q.match_types:
        stmt = stmt.where(ov.c.type.in_(list(q.match_types)))
    if q.max_tlp is not None:
        stmt = stmt.where(ov.c.tlp <= q.max_tlp)
    if q.sharing_group_id is not None:
        stmt = stmt.where(ov.c.sharing_group_id == q.sharing_group_id)
    if q.ids:
        stmt = stmt.where(ov.c.stix_id.in_(list(q.ids)))
    stmt = stmt.where(_version_match(principal, q.versions))
    if tuple(q.versions) != ("last",):
        # Older versions follow the newest one's handling: when the owner narrowed it, orgs
        # outside lose the older versions too.
        latest = aliased(ov)
        stmt = stmt.where(
            exists().where(
                latest.c.stix_id == ov.c.stix_id,
                latest.c.is_latest.is_(True),
                visible_to(principal, latest),
            )
        )
    lower = max(q.added_after or -1, q.after if q.after is not None else -1)
    if lower >= 0:
        stmt = stmt.where(ov.c.date_added > lower)
    return stmt


def object_page(
    conn: Connection, principal: Principal, q: ObjectQuery, limit: int
) -> list[tuple[int, str]]:
    """Up to ``limit`` ``(date_added, content)`` rows, oldest ``date_added`` first."""
    stmt = _selected(principal, q, (ov.c.date_added, ov.c.content))
    result = conn.execute(stmt.order_by(ov.c.date_added).limit(limit))
    # Plain tuples from the driver: both columns need no conversion, and skipping the
    # per-row objects is a good part of a page's cost.
    rows: list[tuple[int, str]] = list(result.cursor.fetchall()) if result.cursor else []
    result.close()
    return rows


@dataclass(frozen=True, slots=True)
class ManifestRow:
    date_added: int
    stix_id: str
    modified: int
    created: int | None


def manifest_page(
    conn: Connection, principal: Principal, q: ObjectQuery, limit: int
) -> list[ManifestRow]:
    """Up to ``limit`` manifest rows, oldest ``date_added`` first."""
    cols = (ov.c.date_added, ov.c.stix_id, ov.c.modified, ov.c.created)
    stmt = _selected(principal, q, cols).order_by(ov.c.date_added).limit(limit)
    return [ManifestRow(*r) for r in conn.execute(stmt)]


def withdraw_versions(
    conn: Connection, principal: Principal, q: ObjectQuery, owner_org_id: str
) -> int:
    """Withdraw the selected versions owned by ``owner_org_id``; how many were withdrawn."""
    chosen = _selected(principal, q, (ov.c.date_added,)).where(ov.c.owner_org_id == owner_org_id)
    picked = [r[0] for r in conn.execute(chosen)]
    if not picked:
        return 0
    conn.execute(update(ov).where(ov.c.date_added.in_(picked)).values(withdrawn=True))
    return len(picked)


def owners_of(conn: Connection, principal: Principal, q: ObjectQuery) -> set[str]:
    """The owner orgs of the selected versions."""
    stmt = _selected(principal, q, (ov.c.owner_org_id,)).distinct()
    return {r[0] for r in conn.execute(stmt)}
