"""SQL of the ATT&CK context: the techniques stored as reference data, the intelligence linked to
them and the sightings of that intelligence.

Every read takes a ``Principal`` and puts ``policy.visible_to`` in its WHERE clause for each
version it touches: the technique, the linking relationship or report, the related object and
the sighting. A link only counts when the caller may read both the link and what it links.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    Subquery,
    and_,
    func,
    select,
    union_all,
)

from qalqan.domain.principal import Principal
from qalqan.policy import visible_to
from qalqan.store.objects import StoredVersion
from qalqan.store.tables import object_links, orgs
from qalqan.store.tables import object_versions as ov
from qalqan.store.tables import sightings as sightings_table

__all__ = [
    "REFERENCE_SOURCE_PREFIX",
    "LinkFilter",
    "PatternRow",
    "attack_patterns",
    "linked_objects",
    "linked_sightings",
    "org_names",
    "related_page",
]

# Reference data (ATT&CK and the like) is stored with a source of this prefix; it describes
# techniques, it is not intelligence about members, so it is never counted.
REFERENCE_SOURCE_PREFIX: Final = "reference:"
# Links that are not statements about a technique: what a sighting saw, where, and samples.
_NOT_ABOUT: Final = ("sighting-of", "where-sighted", "observed-data", "sample")


@dataclass(frozen=True, slots=True)
class PatternRow:
    """A latest attack-pattern version the caller may read."""

    stix_id: str
    date_added: int
    source: str
    content: str


@dataclass(frozen=True, slots=True)
class LinkFilter:
    """What counts as related intelligence: linked when (``since``..``until``, by the linking
    version's ``date_added``), of which types, owned by which org or country."""

    related_types: Sequence[str]
    since: int | None = None
    until: int | None = None
    owner_org_id: str | None = None
    country: str | None = None


def attack_patterns(conn: Connection, principal: Principal) -> list[PatternRow]:
    """Latest attack-pattern versions the principal may read, neither revoked nor withdrawn."""
    stmt = (
        select(ov.c.stix_id, ov.c.date_added, ov.c.source, ov.c.content)
        .where(
            ov.c.type == "attack-pattern",
            ov.c.is_latest.is_(True),
            ov.c.revoked.is_(False),
            ov.c.withdrawn.is_(False),
            visible_to(principal, ov),
        )
        .order_by(ov.c.date_added)
    )
    return [PatternRow(*row) for row in conn.execute(stmt)]


def _alive(principal: Principal, versions: FromClause) -> ColumnElement[bool]:
    return and_(
        versions.c.is_latest.is_(True),
        versions.c.revoked.is_(False),
        versions.c.withdrawn.is_(False),
        visible_to(principal, versions),
    )


def _links(
    principal: Principal, technique_ids: Sequence[str], since: int | None, until: int | None
) -> Subquery:
    """(technique_ref, related_ref) of every visible link to or from the techniques: a
    relationship in either direction, or a container's ``object_refs``."""
    parts: list[Select[Any]] = []
    ids = sorted(set(technique_ids))
    for technique_side, other_side in (("target_ref", "source_ref"), ("source_ref", "target_ref")):
        link = object_links.alias(f"link_{technique_side}")
        linking = ov.alias(f"linking_{technique_side}")
        stmt = (
            select(
                link.c[technique_side].label("technique_ref"),
                link.c[other_side].label("related_ref"),
            )
            .join(linking, linking.c.date_added == link.c.version_id)
            .where(
                link.c[technique_side].in_(ids),
                link.c.link_type.not_in(_NOT_ABOUT),
                _alive(principal, linking),
            )
        )
        if since is not None:
            stmt = stmt.where(linking.c.date_added >= since)
        if until is not None:
            stmt = stmt.where(linking.c.date_added < until)
        parts.append(stmt)
    return union_all(*parts).subquery("links")


def _related(
    principal: Principal, technique_ids: Sequence[str], f: LinkFilter
) -> tuple[Subquery, FromClause, FromClause, list[ColumnElement[bool]]]:
    links = _links(principal, technique_ids, f.since, f.until)
    related = ov.alias("related")
    joined: FromClause = links.join(related, related.c.stix_id == links.c.related_ref)
    where: list[ColumnElement[bool]] = [
        _alive(principal, related),
        related.c.type.in_(list(f.related_types)),
        related.c.source.not_like(f"{REFERENCE_SOURCE_PREFIX}%"),
    ]
    if f.owner_org_id is not None:
        where.append(related.c.owner_org_id == f.owner_org_id)
    if f.country is not None:
        owner = orgs.alias("related_owner")
        joined = joined.join(owner, owner.c.id == related.c.owner_org_id)
        where.append(owner.c.country == f.country)
    return links, related, joined, where


def linked_objects(
    conn: Connection, principal: Principal, technique_ids: Sequence[str], f: LinkFilter
) -> list[tuple[str, str, str, str]]:
    """Distinct (technique_ref, related stix_id, related type, related owner org) of the
    visible latest objects linked to the techniques."""
    if not technique_ids:
        return []
    links, related, joined, where = _related(principal, technique_ids, f)
    stmt = (
        select(links.c.technique_ref, related.c.stix_id, related.c.type, related.c.owner_org_id)
        .select_from(joined)
        .where(*where)
        .distinct()
    )
    return [(r[0], r[1], r[2], r[3]) for r in conn.execute(stmt)]


def linked_sightings(
    conn: Connection,
    principal: Principal,
    technique_ids: Sequence[str],
    *,
    since: int | None = None,
    until: int | None = None,
    owner_org_id: str | None = None,
    country: str | None = None,
) -> list[tuple[str, str, str, int, int]]:
    """Per (technique_ref, indicator, sighting owner org): how many visible sightings (kind
    ``sighting``, latest versions) of visible indicators linked to the techniques there are,
    and the sum of their counts.

    A sighting is in the period when it was last seen in it (when it was stored, if it says
    nothing); as nothing is reported before it is seen, sightings stored before ``since`` are
    not read at all.
    """
    if not technique_ids:
        return []
    links, related, joined, where = _related(
        principal, technique_ids, LinkFilter(related_types=("indicator",))
    )
    pairs = (
        select(links.c.technique_ref, related.c.stix_id.label("indicator"))
        .select_from(joined)
        .where(*where)
        .distinct()
        .subquery("pairs")
    )
    sighting = ov.alias("sighting")
    seen = func.coalesce(sightings_table.c.last_seen, sighting.c.date_added)
    joined_s: FromClause = pairs.join(
        sightings_table, sightings_table.c.sighting_of_ref == pairs.c.indicator
    ).join(sighting, sighting.c.date_added == sightings_table.c.version_id)
    conditions: list[ColumnElement[bool]] = [
        _alive(principal, sighting),
        sightings_table.c.kind == "sighting",
    ]
    if since is not None:
        conditions += [sighting.c.date_added >= since, seen >= since]
    if until is not None:
        conditions.append(seen < until)
    if owner_org_id is not None:
        conditions.append(sighting.c.owner_org_id == owner_org_id)
    if country is not None:
        owner = orgs.alias("sighting_owner")
        joined_s = joined_s.join(owner, owner.c.id == sighting.c.owner_org_id)
        conditions.append(owner.c.country == country)
    stmt = (
        select(
            pairs.c.technique_ref,
            pairs.c.indicator,
            sighting.c.owner_org_id,
            func.count(),
            func.coalesce(func.sum(sightings_table.c.count), 0),
        )
        .select_from(joined_s)
        .where(*conditions)
        .group_by(pairs.c.technique_ref, pairs.c.indicator, sighting.c.owner_org_id)
    )
    return [(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in conn.execute(stmt)]


def related_page(
    conn: Connection,
    principal: Principal,
    technique_ids: Sequence[str],
    f: LinkFilter,
    after: int | None,
    limit: int,
) -> list[StoredVersion]:
    """One keyset page (by ``date_added``) of the visible latest objects linked to the
    techniques."""
    if not technique_ids:
        return []
    _, related, joined, where = _related(principal, technique_ids, f)
    ids = select(related.c.stix_id).select_from(joined).where(*where)
    shown = ov.alias("shown")
    owner = orgs.alias("shown_owner")
    stmt = (
        select(
            shown.c.date_added,
            shown.c.stix_id,
            shown.c.type,
            shown.c.modified,
            shown.c.is_latest,
            shown.c.revoked,
            shown.c.withdrawn,
            shown.c.owner_org_id,
            owner.c.name,
            owner.c.country,
            shown.c.tlp,
            shown.c.distribution,
            shown.c.sharing_group_id,
            shown.c.content,
        )
        .join(owner, owner.c.id == shown.c.owner_org_id)
        .where(
            shown.c.stix_id.in_(ids),
            _alive(principal, shown),
        )
        .order_by(shown.c.date_added)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(shown.c.date_added > after)
    rows: Sequence[Any] = conn.execute(stmt).all()
    return [StoredVersion(*row) for row in rows]


def org_names(conn: Connection, org_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(name, country) of each org id."""
    if not org_ids:
        return {}
    stmt = select(orgs.c.id, orgs.c.name, orgs.c.country).where(orgs.c.id.in_(sorted(org_ids)))
    return {row[0]: (row[1], row[2]) for row in conn.execute(stmt)}
