"""SQL for STIX object versions and the observable index.

Every read here takes a ``Principal`` and filters with ``policy.visible_to`` in the WHERE clause,
before LIMIT: what the caller may not see is never counted, paged or returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, or_, select, update

from qalqan.domain.observables import Observable
from qalqan.domain.principal import Principal
from qalqan.policy import visible_to
from qalqan.store.engine import sql_literal
from qalqan.store.tables import object_versions as ov
from qalqan.store.tables import observables as obs
from qalqan.store.tables import orgs

__all__ = [
    "OBSERVABLE_COLUMNS",
    "STORED_VERSION_COLUMNS",
    "VERSION_COLUMNS",
    "ExistingVersion",
    "ObjectFilter",
    "ObservableHit",
    "SharedColumns",
    "StoredVersion",
    "existing_versions",
    "find_observables",
    "insert_observables",
    "insert_similar_versions",
    "insert_versions",
    "iter_latest",
    "latest_versions",
    "list_latest",
    "mark_withdrawn",
    "observables_of",
    "stored_contents",
    "supersede",
    "versions_of",
    "visible_existing_ids",
]

_CHUNK = 5000  # ids per IN list: well under the bound-parameter limits of both databases


@dataclass(frozen=True, slots=True)
class ExistingVersion:
    stix_id: str
    modified: int
    owner_org_id: str
    is_latest: bool
    date_added: int


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One stored version with its handling, as read paths return it."""

    date_added: int
    stix_id: str
    type: str
    modified: int
    is_latest: bool
    revoked: bool
    withdrawn: bool
    owner_org_id: str
    owner_org_name: str
    owner_country: str
    tlp: int
    distribution: str
    sharing_group_id: str | None
    content: str


@dataclass(frozen=True, slots=True)
class ObjectFilter:
    """Filters of an object listing; None means "any"."""

    types: Sequence[str] | None = None
    owner_org_id: str | None = None
    distributions: Sequence[str] | None = None
    sharing_group_id: str | None = None
    tlps: Sequence[int] | None = None
    max_tlp: int | None = None
    added_after: int | None = None
    modified_since: int | None = None
    modified_until: int | None = None
    text: str | None = None
    include_revoked: bool = False
    include_withdrawn: bool = False


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def existing_versions(
    conn: Connection, stix_ids: Sequence[str]
) -> dict[str, list[ExistingVersion]]:
    """All stored versions of these ids, whoever may see them (for write checks only)."""
    found: dict[str, list[ExistingVersion]] = {}
    cols = (ov.c.stix_id, ov.c.modified, ov.c.owner_org_id, ov.c.is_latest)
    for chunk in _chunks(stix_ids):
        for row in conn.execute(select(*cols, ov.c.date_added).where(ov.c.stix_id.in_(chunk))):
            found.setdefault(row[0], []).append(ExistingVersion(*row))
    return found


def visible_existing_ids(
    conn: Connection, principal: Principal, stix_ids: Iterable[str]
) -> set[str]:
    """Which of these ids exist in a version the principal may see."""
    ids = sorted(set(stix_ids))
    seen: set[str] = set()
    for chunk in _chunks(ids):
        stmt = select(ov.c.stix_id).where(ov.c.stix_id.in_(chunk), visible_to(principal, ov))
        seen.update(conn.execute(stmt.distinct()).scalars())
    return seen


VERSION_COLUMNS: tuple[str, ...] = (
    "date_added",
    "stix_id",
    "type",
    "spec_version",
    "created",
    "modified",
    "is_latest",
    "revoked",
    "withdrawn",
    "name",
    "content",
    "owner_org_id",
    "tlp",
    "distribution",
    "sharing_group_id",
    "source",
    "confidence",
    "valid_until",
    "detect",
)
OBSERVABLE_COLUMNS: tuple[str, ...] = (
    "version_id",
    "kind",
    "value",
    "ip_start",
    "ip_end",
    "warninglist",
)


def _bulk_insert(
    conn: Connection, table: str, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert tuples in ``columns`` order: COPY on PostgreSQL, one prepared executemany on
    SQLite. Both skip the per-row parameter processing of an ORM-level insert."""
    if not rows:
        return
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(rows))  # noqa: S608 - names are ours


def insert_versions(conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Insert version rows, each a tuple (or list) in ``VERSION_COLUMNS`` order."""
    _bulk_insert(conn, ov.name, VERSION_COLUMNS, rows)


@dataclass(frozen=True, slots=True)
class SharedColumns:
    """The columns every version of one bulk insert has in common (see
    :func:`insert_similar_versions`)."""

    type: str
    spec_version: str | None
    created: int | None
    modified: int
    owner_org_id: str
    distribution: str
    sharing_group_id: str | None
    source: str


def insert_similar_versions(
    conn: Connection,
    shared: SharedColumns,
    rows: Sequence[tuple[int, str, str | None, str, int, int | None, int | None, bool]],
) -> None:
    """Insert new latest versions that differ only in ``(date_added, stix_id, name, content,
    tlp, confidence, valid_until, detect)``. On SQLite the shared columns are written into the
    statement once instead of being bound again for every row, which halves the cost of
    binding."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        s = shared
        insert_versions(
            conn,
            [
                (date_added, stix_id, s.type, s.spec_version, s.created, s.modified, True, False,
                 False, name, content, s.owner_org_id, tlp, s.distribution, s.sharing_group_id,
                 s.source, confidence, valid_until, detect)
                for date_added, stix_id, name, content, tlp, confidence, valid_until, detect
                in rows
            ],
        )  # fmt: skip
        return
    constants = {
        "type": shared.type,
        "spec_version": shared.spec_version,
        "created": shared.created,
        "modified": shared.modified,
        "is_latest": True,
        "revoked": False,
        "withdrawn": False,
        "owner_org_id": shared.owner_org_id,
        "distribution": shared.distribution,
        "sharing_group_id": shared.sharing_group_id,
        "source": shared.source,
    }
    varying = (
        "date_added", "stix_id", "name", "content", "tlp", "confidence", "valid_until", "detect"
    )  # fmt: skip
    names = ", ".join((*varying, *constants))
    values = ", ".join(("?",) * len(varying) + tuple(sql_literal(v) for v in constants.values()))
    sql = f"INSERT INTO {ov.name} ({names}) VALUES ({values})"  # noqa: S608 - our own literals
    conn.exec_driver_sql(sql, list(rows))


def insert_observables(conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Insert observable index rows, each a tuple (or list) in ``OBSERVABLE_COLUMNS`` order."""
    _bulk_insert(conn, obs.name, OBSERVABLE_COLUMNS, rows)


def stored_contents(
    conn: Connection, keys: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], str]:
    """The stored JSON of these (id, modified) versions, whoever may see them (for write checks
    only); keys not stored are left out."""
    wanted = set(keys)
    found: dict[tuple[str, int], str] = {}
    for chunk in _chunks(sorted({stix_id for stix_id, _ in wanted})):
        stmt = select(ov.c.stix_id, ov.c.modified, ov.c.content).where(ov.c.stix_id.in_(chunk))
        for stix_id, modified, content in conn.execute(stmt):
            if (stix_id, modified) in wanted:
                found[stix_id, modified] = content
    return found


def latest_versions(conn: Connection, stix_ids: Sequence[str]) -> dict[str, tuple[int, bool, str]]:
    """``(date_added, revoked, content)`` of the latest version of each of these ids, whoever
    may see them (for writers that add versions of their own objects)."""
    found: dict[str, tuple[int, bool, str]] = {}
    for chunk in _chunks(stix_ids):
        stmt = select(ov.c.stix_id, ov.c.date_added, ov.c.revoked, ov.c.content).where(
            ov.c.stix_id.in_(chunk), ov.c.is_latest.is_(True)
        )
        for stix_id, date_added, revoked, content in conn.execute(stmt):
            found[stix_id] = (date_added, revoked, content)
    return found


def observables_of(
    conn: Connection, date_added: Sequence[int]
) -> dict[int, list[tuple[str, str, str | None, str | None, str | None]]]:
    """The observable rows (kind, value, ip_start, ip_end, warninglist) of these versions."""
    found: dict[int, list[tuple[str, str, str | None, str | None, str | None]]] = {}
    cols = (obs.c.version_id, obs.c.kind, obs.c.value, obs.c.ip_start, obs.c.ip_end)
    for i in range(0, len(date_added), _CHUNK):
        stmt = select(*cols, obs.c.warninglist).where(
            obs.c.version_id.in_(date_added[i : i + _CHUNK])
        )
        for version_id, kind, value, ip_start, ip_end, listed in conn.execute(stmt):
            found.setdefault(version_id, []).append((kind, value, ip_start, ip_end, listed))
    return found


def supersede(conn: Connection, date_added: Sequence[int]) -> None:
    """These versions are no longer the latest of their object."""
    for i in range(0, len(date_added), _CHUNK):
        conn.execute(
            update(ov)
            .where(ov.c.date_added.in_(date_added[i : i + _CHUNK]))
            .values(is_latest=False)
        )


def mark_withdrawn(conn: Connection, date_added: int) -> None:
    """Withdraw a stored version without touching its content (for objects of other creators)."""
    conn.execute(update(ov).where(ov.c.date_added == date_added).values(withdrawn=True))


# The columns of a StoredVersion, in its field order (read paths join orgs for the names).
STORED_VERSION_COLUMNS = (
    ov.c.date_added,
    ov.c.stix_id,
    ov.c.type,
    ov.c.modified,
    ov.c.is_latest,
    ov.c.revoked,
    ov.c.withdrawn,
    ov.c.owner_org_id,
    orgs.c.name,
    orgs.c.country,
    ov.c.tlp,
    ov.c.distribution,
    ov.c.sharing_group_id,
    ov.c.content,
)


def _visible_versions(principal: Principal) -> Select[Any]:
    return (
        select(*STORED_VERSION_COLUMNS)
        .join(orgs, orgs.c.id == ov.c.owner_org_id)
        .where(visible_to(principal, ov))
    )


def _apply(stmt: Select[Any], f: ObjectFilter) -> Select[Any]:
    if f.types:
        stmt = stmt.where(ov.c.type.in_(list(f.types)))
    if f.distributions:
        stmt = stmt.where(ov.c.distribution.in_(list(f.distributions)))
    if f.sharing_group_id:
        stmt = stmt.where(ov.c.sharing_group_id == f.sharing_group_id)
    if f.owner_org_id:
        stmt = stmt.where(ov.c.owner_org_id == f.owner_org_id)
    if f.tlps:
        stmt = stmt.where(ov.c.tlp.in_(list(f.tlps)))
    if f.max_tlp is not None:
        stmt = stmt.where(ov.c.tlp <= f.max_tlp)
    if f.added_after is not None:
        stmt = stmt.where(ov.c.date_added > f.added_after)
    if f.modified_since is not None:
        stmt = stmt.where(ov.c.modified >= f.modified_since)
    if f.modified_until is not None:
        stmt = stmt.where(ov.c.modified <= f.modified_until)
    if f.text:
        escaped = f.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(ov.c.name.ilike(f"%{escaped}%", escape="\\"))
    if not f.include_revoked:
        stmt = stmt.where(ov.c.revoked.is_(False))
    if not f.include_withdrawn:
        stmt = stmt.where(ov.c.withdrawn.is_(False))
    return stmt


def list_latest(
    conn: Connection, principal: Principal, f: ObjectFilter, after: int | None, limit: int
) -> list[StoredVersion]:
    """One keyset page of latest versions visible to the principal, by ``date_added``."""
    stmt = _apply(_visible_versions(principal).where(ov.c.is_latest.is_(True)), f)
    if after is not None:
        stmt = stmt.where(ov.c.date_added > after)
    stmt = stmt.order_by(ov.c.date_added).limit(limit)
    return [StoredVersion(*r) for r in conn.execute(stmt)]


def iter_latest(
    conn: Connection, principal: Principal, f: ObjectFilter, batch: int = 2000
) -> Iterator[StoredVersion]:
    """Every latest version visible to the principal, streamed in keyset batches."""
    after: int | None = None
    while True:
        page = list_latest(conn, principal, f, after, batch)
        yield from page
        if len(page) < batch:
            return
        after = page[-1].date_added


def versions_of(conn: Connection, principal: Principal, stix_id: str) -> list[StoredVersion]:
    """The visible versions of one object, oldest ``modified`` first."""
    stmt = (
        _visible_versions(principal)
        .where(ov.c.stix_id == stix_id)
        .order_by(ov.c.modified, ov.c.date_added)
    )
    return [StoredVersion(*r) for r in conn.execute(stmt)]


@dataclass(frozen=True, slots=True)
class ObservableHit:
    """An observable index entry and the latest object version it belongs to."""

    id: int
    kind: str
    value: str
    version: StoredVersion


def _network_starts(key: str) -> list[str]:
    """The ``ip_key`` of the first address of every network (/0 to /128) containing ``key``."""
    number = int(key, 16)
    return sorted({f"{number >> bits << bits:032x}" for bits in range(129)})


def find_observables(
    conn: Connection,
    principal: Principal,
    wanted: Observable,
    *,
    after: int | None = None,
    limit: int = 100,
) -> list[ObservableHit]:
    """Index entries equal to ``wanted`` — and for IPs and CIDRs, the entries whose ranges
    contain it or lie inside it — in latest versions the principal may see."""
    if wanted.ip_start is not None and wanted.ip_end is not None:
        lo, hi = wanted.ip_start, wanted.ip_end
        match = or_(
            and_(obs.c.kind == "ip", obs.c.ip_start >= lo, obs.c.ip_start <= hi),
            # Networks are stored with their host bits cleared, so one that contains [lo, hi]
            # starts at lo with some low bits cleared: index probes instead of a range scan.
            and_(obs.c.kind == "cidr", obs.c.ip_start.in_(_network_starts(lo)), obs.c.ip_end >= hi),
            and_(obs.c.kind == "cidr", obs.c.ip_start.between(lo, hi), obs.c.ip_end <= hi),
        )
    else:
        match = and_(obs.c.value == wanted.value, obs.c.kind == wanted.kind)
    stmt = (
        select(obs.c.id, obs.c.kind, obs.c.value, *STORED_VERSION_COLUMNS)
        .join(ov, ov.c.date_added == obs.c.version_id)
        .join(orgs, orgs.c.id == ov.c.owner_org_id)
        .where(
            match,
            ov.c.is_latest.is_(True),
            ov.c.withdrawn.is_(False),
            visible_to(principal, ov),
        )
        .order_by(obs.c.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(obs.c.id > after)
    hits = []
    for row in conn.execute(stmt):
        rest: tuple[Any, ...] = tuple(row[3:])
        hits.append(ObservableHit(row[0], row[1], row[2], StoredVersion(*rest)))
    return hits
