"""SQL of sightings: the objects a sighting may be about, per-org totals of the sightings of
one object, pages of them, and the facts an owner is told about a new one.

Reads on behalf of a caller filter with ``policy.visible_to`` in the WHERE clause, before
grouping or paging; the reads for notifications serve the indexer, which decides with
``policy.is_visible`` whom to tell.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, func, or_, select
from sqlalchemy.orm import aliased

from qalqan.domain.principal import Principal
from qalqan.policy import visible_to
from qalqan.store.objects import STORED_VERSION_COLUMNS, StoredVersion
from qalqan.store.tables import object_versions as ov
from qalqan.store.tables import orgs
from qalqan.store.tables import sightings as st

__all__ = [
    "OrgKindTotal",
    "SightedObject",
    "SightingEvent",
    "SightingVersion",
    "events",
    "latest_sightings",
    "page_of",
    "totals_by_org",
    "unreleased_versions",
    "visible_objects",
]

_CHUNK = 5000  # ids per IN list: well under the bound-parameter limits of both databases


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


@dataclass(frozen=True, slots=True)
class SightedObject:
    """The latest version of an object a sighting may be about, as its sighter sees it."""

    stix_id: str
    type: str
    owner_org_id: str
    tlp: int


@dataclass(frozen=True, slots=True)
class SightingVersion:
    """A stored sighting version and the one more org it is released to, if any."""

    version: StoredVersion
    recipient_org_id: str | None


@dataclass(frozen=True, slots=True)
class SightingEvent:
    """A sighting version with its handling and what it reports, and who owns what it is
    about: what the indexer needs to decide whom to tell."""

    version_id: int
    stix_id: str
    modified: int
    owner_org_id: str
    org_name: str
    org_country: str
    tlp: int
    distribution: str
    sharing_group_id: str | None
    recipient_org_id: str | None
    sighting_of_ref: str
    kind: str
    count: int
    first_seen: int | None
    last_seen: int | None
    target_owner_org_id: str | None


@dataclass(frozen=True, slots=True)
class OrgKindTotal:
    """What one org reported about one object, for one kind of sighting."""

    org_id: str
    org_name: str
    country: str
    kind: str
    reports: int
    count: int
    first_seen: int | None
    last_seen: int | None


def visible_objects(
    conn: Connection, principal: Principal, stix_ids: Sequence[str]
) -> dict[str, SightedObject]:
    """The latest versions of these ids that the principal may see, by id."""
    found: dict[str, SightedObject] = {}
    ids = sorted(set(stix_ids))
    for chunk in _chunks(ids):
        stmt = select(ov.c.stix_id, ov.c.type, ov.c.owner_org_id, ov.c.tlp).where(
            ov.c.stix_id.in_(chunk), ov.c.is_latest.is_(True), visible_to(principal, ov)
        )
        for row in conn.execute(stmt):
            found[row[0]] = SightedObject(*row)
    return found


_VERSION_COLUMNS = (*STORED_VERSION_COLUMNS, ov.c.recipient_org_id)


def _versions(stmt: Select[Any], conn: Connection) -> list[SightingVersion]:
    return [SightingVersion(StoredVersion(*row[:-1]), row[-1]) for row in conn.execute(stmt)]


def latest_sightings(
    conn: Connection, principal: Principal, stix_ids: Sequence[str]
) -> dict[str, SightingVersion]:
    """The latest versions of these sighting ids that the principal may see, by id."""
    found: dict[str, SightingVersion] = {}
    for chunk in _chunks(sorted(set(stix_ids))):
        stmt = (
            select(*_VERSION_COLUMNS)
            .join(orgs, orgs.c.id == ov.c.owner_org_id)
            .where(ov.c.stix_id.in_(chunk), ov.c.is_latest.is_(True), visible_to(principal, ov))
        )
        found.update((s.version.stix_id, s) for s in _versions(stmt, conn))
    return found


def _counted(principal: Principal, stix_id: str) -> Any:
    """Sightings of ``stix_id`` that count: the latest version, neither revoked nor withdrawn,
    visible to the principal."""
    return and_(
        st.c.sighting_of_ref == stix_id,
        ov.c.is_latest.is_(True),
        ov.c.revoked.is_(False),
        ov.c.withdrawn.is_(False),
        visible_to(principal, ov),
    )


def totals_by_org(conn: Connection, principal: Principal, stix_id: str) -> list[OrgKindTotal]:
    """Per org and kind: how many sightings of ``stix_id`` the principal may see, the sum of
    their counts, and the earliest first and latest last seen."""
    stmt = (
        select(
            orgs.c.id,
            orgs.c.name,
            orgs.c.country,
            st.c.kind,
            func.count(),
            func.coalesce(func.sum(st.c.count), 0),
            func.min(st.c.first_seen),
            func.max(st.c.last_seen),
        )
        .select_from(st)
        .join(ov, ov.c.date_added == st.c.version_id)
        .join(orgs, orgs.c.id == ov.c.owner_org_id)
        .where(_counted(principal, stix_id))
        .group_by(orgs.c.id, orgs.c.name, orgs.c.country, st.c.kind)
        .order_by(orgs.c.name, st.c.kind)
    )
    return [
        OrgKindTotal(
            org_id=row[0],
            org_name=row[1],
            country=row[2],
            kind=row[3],
            reports=int(row[4]),
            count=int(row[5]),
            first_seen=row[6],
            last_seen=row[7],
        )
        for row in conn.execute(stmt)
    ]


def page_of(
    conn: Connection, principal: Principal, stix_id: str, before: int | None, limit: int
) -> list[SightingVersion]:
    """One keyset page of the counted sightings of ``stix_id``, newest ``date_added`` first."""
    stmt = (
        select(*_VERSION_COLUMNS)
        .select_from(st)
        .join(ov, ov.c.date_added == st.c.version_id)
        .join(orgs, orgs.c.id == ov.c.owner_org_id)
        .where(_counted(principal, stix_id))
    )
    if before is not None:
        stmt = stmt.where(st.c.version_id < before)
    return _versions(stmt.order_by(st.c.version_id.desc()).limit(limit), conn)


def events(conn: Connection, version_ids: Sequence[int]) -> list[SightingEvent]:
    """The sighting versions among ``version_ids`` (already in the analysis index), oldest
    first, with the owner of the latest version of the object each is about (None when this
    node does not hold it)."""
    target = aliased(ov)
    found: list[SightingEvent] = []
    for chunk in _chunks(sorted(set(version_ids))):
        stmt = (
            select(
                ov.c.date_added,
                ov.c.stix_id,
                ov.c.modified,
                ov.c.owner_org_id,
                orgs.c.name,
                orgs.c.country,
                ov.c.tlp,
                ov.c.distribution,
                ov.c.sharing_group_id,
                ov.c.recipient_org_id,
                st.c.sighting_of_ref,
                st.c.kind,
                st.c.count,
                st.c.first_seen,
                st.c.last_seen,
                target.c.owner_org_id,
            )
            .select_from(st)
            .join(ov, ov.c.date_added == st.c.version_id)
            .join(orgs, orgs.c.id == ov.c.owner_org_id)
            .outerjoin(
                target,
                and_(target.c.stix_id == st.c.sighting_of_ref, target.c.is_latest.is_(True)),
            )
            .where(st.c.version_id.in_(chunk))
            .order_by(st.c.version_id)
        )
        found.extend(SightingEvent(*tuple(row)) for row in conn.execute(stmt))
    return found


def unreleased_versions(
    conn: Connection, owner_org_id: str, recipients: Mapping[str, str]
) -> list[int]:
    """The latest versions (``date_added``) of the sightings ``stix id → org id`` owned by
    ``owner_org_id`` that are not yet released to that org."""
    by_recipient: dict[str, list[str]] = {}
    for stix_id, org_id in recipients.items():
        by_recipient.setdefault(org_id, []).append(stix_id)
    found: list[int] = []
    for org_id, stix_ids in by_recipient.items():
        for chunk in _chunks(sorted(stix_ids)):
            stmt = select(ov.c.date_added).where(
                ov.c.stix_id.in_(chunk),
                ov.c.owner_org_id == owner_org_id,
                ov.c.is_latest.is_(True),
                or_(ov.c.recipient_org_id.is_(None), ov.c.recipient_org_id != org_id),
            )
            found.extend(conn.execute(stmt).scalars())
    return sorted(found)
