"""SQL of correlation: which visible objects name a value, or a value related to it.

There is no table of correlated pairs. A lookup reads the observable index at the value and at
its relatives (networks containing an address, addresses inside a network, parent and child
domains, a URL's host, URLs on a domain), joined to the latest versions the viewer may see:
:func:`qalqan.policy.visible_to` sits in every WHERE clause, so nothing invisible is counted,
summarized or listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    String,
    and_,
    case,
    cast,
    distinct,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)

from qalqan.domain.observables import InvalidObservable, Observable, normalize
from qalqan.domain.principal import Principal
from qalqan.policy import visible_to
from qalqan.store.tables import object_versions as ov
from qalqan.store.tables import observables as obs
from qalqan.store.tables import orgs
from qalqan.store.tables import sightings as sightings_table

__all__ = [
    "OrgSummary",
    "RelatedHit",
    "Relation",
    "SightingSummary",
    "network_starts",
    "related_page",
    "relations_of",
    "sighting_summary",
    "summarize",
]

# A summary reads at most this many index entries; past it the figures say they are capped.
SUMMARY_CAP: Final = 200_000


@dataclass(frozen=True, slots=True)
class Relation:
    """One way an index entry can relate to the value looked up, as an SQL condition on the
    ``observables`` table."""

    name: str
    condition: ColumnElement[bool]


@dataclass(frozen=True, slots=True)
class OrgSummary:
    org_id: str
    org_name: str
    country: str
    objects: int
    first_added: int
    last_added: int


@dataclass(frozen=True, slots=True)
class SightingSummary:
    org_id: str
    org_name: str
    country: str
    kind: str
    sightings: int
    count: int
    first_seen: int | None
    last_seen: int | None


@dataclass(frozen=True, slots=True)
class RelatedHit:
    """An index entry related to the value, and the visible latest version it belongs to."""

    entry_id: int
    kind: str
    value: str
    relation: str
    date_added: int
    stix_id: str
    type: str
    name: str | None
    created: int | None
    modified: int
    owner_org_id: str
    owner_org_name: str
    owner_country: str
    tlp: int
    distribution: str
    sharing_group_id: str | None


def network_starts(key: str) -> list[str]:
    """The ``ip_key`` of the first address of every network (/0 to /128) containing ``key``."""
    number = int(key, 16)
    return sorted({f"{number >> bits << bits:032x}" for bits in range(129)})


def _parent_domains(domain: str) -> list[str]:
    """``a.b.example.com`` → ``b.example.com``, ``example.com`` (parents with at least one dot)."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels) - 1)]


def _urls_on(host: str) -> ColumnElement[bool]:
    """URL entries whose host is ``host``: canonical URLs are ``scheme://host[:port]/…``, so each
    scheme is two ranges of the value index (``'/'`` and ``':'`` after the host)."""
    ranges = []
    for scheme in ("http", "https"):
        for sep, after in (("/", "0"), (":", ";")):
            prefix = f"{scheme}://{host}"
            ranges.append(and_(obs.c.value >= prefix + sep, obs.c.value < prefix + after))
    return and_(obs.c.kind == "url", or_(*ranges))


def _domain_relations(domain: str, same: str = "same") -> list[Relation]:
    reversed_name = domain[::-1]
    relations = [Relation(same, and_(obs.c.kind == "domain", obs.c.value == domain))]
    parents = _parent_domains(domain)
    if parents:
        relations.append(Relation("parent", and_(obs.c.kind == "domain", obs.c.value.in_(parents))))
    relations.append(
        Relation(
            "child",
            # rvalue is the name reversed: children start with the reversed name and a dot.
            and_(obs.c.rvalue > reversed_name + ".", obs.c.rvalue < reversed_name + "/"),
        )
    )
    return relations


def relations_of(wanted: Observable) -> list[Relation]:
    """The ways an index entry relates to ``wanted``, most direct first.

    - an address: the same address in any spelling; networks containing it;
    - a network: the same network; networks containing it; addresses and networks inside it;
    - a domain: the same; its parents; its subdomains; URLs on it;
    - a URL: the same; its host and the host's parents (a URL whose host is an address: the
      address and networks containing it);
    - an email address: the same; its domain and the domain's parents;
    - a hash: the same.
    """
    kind, value = wanted.kind, wanted.value
    if wanted.ip_start is not None and wanted.ip_end is not None:
        lo, hi = wanted.ip_start, wanted.ip_end
        if kind == "ip":
            exact = and_(obs.c.kind == "ip", obs.c.ip_start == lo)
        else:
            exact = and_(obs.c.kind == "cidr", obs.c.ip_start == lo, obs.c.ip_end == hi)
        relations = [
            Relation("same", exact),
            Relation(
                "contains",
                and_(
                    obs.c.kind == "cidr",
                    obs.c.ip_start.in_(network_starts(lo)),
                    obs.c.ip_end >= hi,
                    ~and_(obs.c.ip_start == lo, obs.c.ip_end == hi),
                ),
            ),
        ]
        if kind == "cidr":
            relations.append(
                Relation(
                    "inside",
                    and_(
                        obs.c.kind.in_(("ip", "cidr")),
                        obs.c.ip_start.between(lo, hi),
                        obs.c.ip_end <= hi,
                        ~and_(obs.c.ip_start == lo, obs.c.ip_end == hi),
                    ),
                )
            )
        return relations
    if kind == "domain":
        return [*_domain_relations(value), Relation("url", _urls_on(value))]
    same = Relation("same", and_(obs.c.kind == kind, obs.c.value == value))
    if kind == "url":
        host = urlsplit(value).hostname
        if host is None:
            return [same]
        try:
            address = normalize("ip", host.strip("[]"))
        except InvalidObservable:
            return [same, *_domain_relations(host, same="host")]
        return [same, *(replace(r, name="host" if r.name == "same" else r.name)
                        for r in relations_of(address))]  # fmt: skip
    if kind == "email":
        domain = value.rpartition("@")[2]
        return [same, *(r for r in _domain_relations(domain, "domain") if r.name != "child")]
    return [same]


def _visible_latest(principal: Principal, versions: Any = ov) -> ColumnElement[bool]:
    # A revoked object is one its creator took back: it no longer says anything about a value.
    return and_(
        versions.c.is_latest.is_(True),
        versions.c.revoked.is_(False),
        versions.c.withdrawn.is_(False),
        visible_to(principal, versions),
    )


def _matches(relations: Sequence[Relation]) -> ColumnElement[bool]:
    return or_(*(r.condition for r in relations))


def _entries(principal: Principal, relations: Sequence[Relation], but: str | None) -> Select[Any]:
    """Visible latest versions' index entries related to the value, leaving out the object
    ``but`` (columns are added by callers)."""
    stmt = (
        select()
        .select_from(obs)
        .join(ov, ov.c.date_added == obs.c.version_id)
        .where(_matches(relations), _visible_latest(principal))
    )
    return stmt if but is None else stmt.where(ov.c.stix_id != but)


def summarize(
    conn: Connection, principal: Principal, relations: Sequence[Relation], but: str | None = None
) -> tuple[list[OrgSummary], dict[str, int], bool]:
    """Per owner org: visible objects and first/last ``date_added``; objects per relation; and
    whether the figures are capped (more than :data:`SUMMARY_CAP` index entries).

    One statement: the related entries are read once into a materialized CTE and grouped three
    ways (by org, by relation, all), so the value's index range is walked a single time.
    """
    matched = (
        _entries(principal, relations, but)
        .add_columns(
            obs.c.version_id,
            ov.c.owner_org_id,
            ov.c.date_added,
            _relation_case(relations).label("relation"),
        )
        .limit(SUMMARY_CAP + 1)
        .cte("matched")
        .prefix_with("MATERIALIZED")
    )
    objects = func.count(distinct(matched.c.version_id))
    no_time = cast(null(), BigInteger)
    stmt = union_all(
        select(literal("org"), matched.c.owner_org_id, objects,
               func.min(matched.c.date_added), func.max(matched.c.date_added))
        .group_by(matched.c.owner_org_id),
        select(literal("relation"), matched.c.relation, objects, no_time, no_time)
        .group_by(matched.c.relation),
        select(literal("entries"), cast(null(), String), func.count(), no_time, no_time)
        .select_from(matched),
    )  # fmt: skip
    per_org: list[tuple[str, int, int, int]] = []
    by_relation: dict[str, int] = {}
    entries = 0
    for part, key, n, first, last in conn.execute(stmt):
        if part == "org":
            per_org.append((key, int(n), first, last))
        elif part == "relation":
            by_relation[key] = int(n)
        else:
            entries = int(n)
    names = _org_names(conn, [org_id for org_id, *_ in per_org])
    summaries = sorted(
        (OrgSummary(org_id, *names[org_id], n, first, last) for org_id, n, first, last in per_org),
        key=lambda o: (-o.objects, o.org_name),
    )
    return summaries, by_relation, entries > SUMMARY_CAP


def _org_names(conn: Connection, org_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    if not org_ids:
        return {}
    stmt = select(orgs.c.id, orgs.c.name, orgs.c.country).where(orgs.c.id.in_(sorted(org_ids)))
    return {org_id: (name, country) for org_id, name, country in conn.execute(stmt)}


def sighting_summary(
    conn: Connection, principal: Principal, relations: Sequence[Relation]
) -> list[SightingSummary]:
    """Visible sightings of the visible objects related to the value, per sighting org and
    kind."""
    sighted = _entries(principal, relations, None).add_columns(ov.c.stix_id).limit(SUMMARY_CAP)
    sv = ov.alias("sighting_versions")
    stmt = (
        select(
            orgs.c.id,
            orgs.c.name,
            orgs.c.country,
            sightings_table.c.kind,
            func.count(),
            func.sum(sightings_table.c.count),
            func.min(sightings_table.c.first_seen),
            func.max(sightings_table.c.last_seen),
        )
        .select_from(sightings_table)
        .join(sv, sv.c.date_added == sightings_table.c.version_id)
        .join(orgs, orgs.c.id == sv.c.owner_org_id)
        .where(
            sightings_table.c.sighting_of_ref.in_(sighted.scalar_subquery()),
            _visible_latest(principal, sv),
        )
        .group_by(orgs.c.id, orgs.c.name, orgs.c.country, sightings_table.c.kind)
        .order_by(orgs.c.name, sightings_table.c.kind)
    )
    return [
        SightingSummary(org_id, name, country, kind, int(n), int(total or 0), first, last)
        for org_id, name, country, kind, n, total, first, last in conn.execute(stmt)
    ]


def _relation_case(relations: Sequence[Relation]) -> ColumnElement[str]:
    if len(relations) == 1:
        return literal(relations[0].name)
    return case(*((r.condition, r.name) for r in relations), else_=relations[-1].name)


def related_page(
    conn: Connection,
    principal: Principal,
    relations: Sequence[Relation],
    *,
    after: int | None,
    limit: int,
    but: str | None = None,
) -> list[RelatedHit]:
    """One keyset page (by index entry) of the visible objects related to the value.

    Callers page only values that are not over-correlating, so the matching entries are few:
    they are collected first (materialized) and then sorted, instead of letting the planner walk
    the whole index in entry order looking for them.
    """
    matched = _entries(principal, relations, but).add_columns(
        obs.c.id.label("entry_id"), _relation_case(relations).label("relation")
    )
    if after is not None:
        matched = matched.where(obs.c.id > after)
    found = matched.cte("matched").prefix_with("MATERIALIZED")
    stmt = (
        select(
            found.c.entry_id,
            obs.c.kind,
            obs.c.value,
            found.c.relation,
            ov.c.date_added,
            ov.c.stix_id,
            ov.c.type,
            ov.c.name,
            ov.c.created,
            ov.c.modified,
            ov.c.owner_org_id,
            orgs.c.name,
            orgs.c.country,
            ov.c.tlp,
            ov.c.distribution,
            ov.c.sharing_group_id,
        )
        .select_from(found)
        .join(obs, obs.c.id == found.c.entry_id)
        .join(ov, ov.c.date_added == obs.c.version_id)
        .join(orgs, orgs.c.id == ov.c.owner_org_id)
        .order_by(found.c.entry_id)
        .limit(limit)
    )
    return [RelatedHit(*tuple(row)) for row in conn.execute(stmt)]
