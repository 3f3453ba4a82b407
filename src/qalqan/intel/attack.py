"""ATT&CK context: MITRE ATT&CK bundles (enterprise, mobile, ICS) as reference data, and per
technique the intelligence linked to it and the sightings of that intelligence.

Reference data is stored through the importer like any bundle, at TLP:CLEAR with a broadcast
distribution so every org sees it, with the source :data:`SOURCE`. STIX versioning does the
rest: a bundle imported again is unchanged, a newer ATT&CK release adds newer versions.

A technique is a visible, latest attack-pattern with an ATT&CK id (``T0800``, ``T1059.001``)
in its external references. Its *related intelligence* is every visible latest indicator,
malware, tool, intrusion set, threat actor, campaign, incident, report or grouping linked to it
by a visible relationship (either direction) or by a container's ``object_refs``; reference data
itself never counts. Its *sightings* are the visible sightings of the indicators among them.
The counts per technique are computed over the whole (bounded) catalog and then sorted and
paged with a keyset on the sort key, so a page is never computed from OFFSET.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from sqlalchemy import Connection

from qalqan.domain.countries import parse_country
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal
from qalqan.errors import Forbidden, InvalidInput, NotFound, parse_field
from qalqan.intel.importer import HandlingRequest, ImportReport, import_objects
from qalqan.intel.periods import Period
from qalqan.intel.reading import decode_cursor, encode_cursor
from qalqan.policy import BROADCAST, can_administer_org
from qalqan.store import accounts as accounts_store
from qalqan.store import attack as store
from qalqan.store.attack import REFERENCE_SOURCE_PREFIX, LinkFilter
from qalqan.store.objects import StoredVersion

__all__ = [
    "DOMAINS",
    "RELATED_TYPES",
    "SORTS",
    "SOURCE",
    "AttackImport",
    "Technique",
    "TechniqueCounts",
    "TechniqueDetail",
    "TechniqueFilter",
    "TechniquePage",
    "attack_id_of",
    "import_attack",
    "list_techniques",
    "parse_domain",
    "show_technique",
]

SOURCE: Final = f"{REFERENCE_SOURCE_PREFIX}attack"
RELATED_TYPES: Final = (
    "indicator",
    "malware",
    "tool",
    "intrusion-set",
    "threat-actor",
    "campaign",
    "incident",
    "report",
    "grouping",
)
# ATT&CK domains by the names people use; the value is what ``x_mitre_domains`` says.
DOMAINS: Final = {
    "enterprise": "enterprise-attack",
    "mobile": "mobile-attack",
    "ics": "ics-attack",
}
SORTS: Final = ("intelligence", "sightings", "attack_id")
_ATTACK_SOURCES: Final = frozenset({"mitre-attack", "mitre-ics-attack", "mitre-mobile-attack"})
_ATTACK_ID: Final = re.compile(r"T\d{4}(?:\.\d{3})?")
# How the summary of an import names what a bundle holds.
_CATEGORIES: Final = {
    "attack-pattern": "techniques",
    "x-mitre-tactic": "tactics",
    "intrusion-set": "groups",
    "malware": "software",
    "tool": "software",
    "campaign": "campaigns",
    "course-of-action": "mitigations",
    "relationship": "relationships",
}
_SHOWN_ERRORS: Final = 20
_MAX_POSITION: Final = 2**63  # date_added is a signed 64-bit integer


def attack_id_of(obj: dict[str, Any]) -> str | None:
    """The ATT&CK id (``T0800``, ``T1059.001``) of an attack-pattern, from its external
    references; None if it has none."""
    refs = obj.get("external_references")
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if (
            isinstance(ref, dict)
            and ref.get("source_name") in _ATTACK_SOURCES
            and isinstance(ref.get("external_id"), str)
            and _ATTACK_ID.fullmatch(ref["external_id"])
        ):
            return str(ref["external_id"])
    return None


def parse_domain(text: str) -> str:
    """``'ics'`` or ``'ics-attack'`` → ``'ics-attack'``; ValueError naming the domains."""
    key = text.strip().lower().removesuffix("-attack")
    if key not in DOMAINS:
        raise ValueError(f"unknown ATT&CK domain {text!r}; use one of {', '.join(DOMAINS)}")
    return DOMAINS[key]


# --- import ------------------------------------------------------------------------------


@dataclass(slots=True)
class AttackImport:
    """What one ATT&CK bundle brought: the importer's report and counts by kind of object."""

    name: str
    collection: str | None
    version: str | None
    report: ImportReport
    counts: dict[str, int] = field(default_factory=dict)
    deprecated: int = 0
    revoked: int = 0

    def to_dict(self) -> dict[str, Any]:
        summary = self.report.to_dict()
        return {
            "file": self.name,
            "collection": self.collection,
            "version": self.version,
            "accepted": summary["accepted"],
            "created": summary["created"],
            "unchanged": summary["unchanged"],
            "rejected": summary["rejected"],
            **{key: self.counts.get(key, 0) for key in sorted(set(_CATEGORIES.values()))},
            "other": self.counts.get("other", 0),
            "deprecated": self.deprecated,
            "revoked": self.revoked,
            "errors": summary["errors"][:_SHOWN_ERRORS],
        }


def _looks_like_attack(objects: Sequence[Any]) -> bool:
    return any(
        isinstance(obj, dict)
        and (
            obj.get("type") == "x-mitre-collection"
            or (obj.get("type") == "attack-pattern" and attack_id_of(obj) is not None)
        )
        for obj in objects
    )


def import_attack(
    conn: Connection,
    principal: Principal,
    objects: Sequence[Any],
    *,
    name: str = "bundle",
    distribution: Distribution = Distribution.NODE,
    progress: Callable[[int], None] | None = None,
) -> AttackImport:
    """Store the objects of an ATT&CK bundle as reference data (TLP:CLEAR, ``distribution``)
    owned by the principal's org, inside the caller's transaction.

    Forbidden unless the principal administers its org (or the node); InvalidInput when the
    distribution would hide the data from some org, or the objects are not an ATT&CK bundle.
    What the importer refuses is reported per object, never raised.
    """
    if not can_administer_org(principal, principal.org_id):
        raise Forbidden("only org admins and node admins import ATT&CK reference data")
    if distribution not in BROADCAST:
        raise InvalidInput(
            "distribution: reference data is for every org; use node, connected or all",
            field="distribution",
        )
    if not _looks_like_attack(objects):
        raise InvalidInput(
            f"{name}: not an ATT&CK bundle (no x-mitre-collection, no technique with an ATT&CK id)",
            field="file",
        )
    report = import_objects(
        conn,
        principal,
        objects,
        HandlingRequest(TLP.CLEAR, distribution),
        source=SOURCE,
        progress=progress,
    )
    result = AttackImport(name, None, None, report)
    counts: dict[str, int] = defaultdict(int)
    for accepted in report.accepted:
        obj = objects[accepted.index]
        counts[_CATEGORIES.get(obj["type"], "other")] += 1
        result.deprecated += obj.get("x_mitre_deprecated") is True
        result.revoked += obj.get("revoked") is True
        if obj["type"] == "x-mitre-collection":
            result.collection = obj.get("name")
            result.version = obj.get("x_mitre_version")
    result.counts = dict(counts)
    return result


# --- the catalog -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Technique:
    """A technique as the catalog describes it."""

    attack_id: str
    stix_id: str
    name: str
    tactics: tuple[str, ...]
    domains: tuple[str, ...]
    is_subtechnique: bool
    deprecated: bool
    url: str | None
    description: str | None
    reference: bool  # described by reference data (not only by some org's own copy)

    @property
    def parent(self) -> str | None:
        """The ATT&CK id of the technique a sub-technique belongs to."""
        return self.attack_id.split(".")[0] if "." in self.attack_id else None


def _technique(row: store.PatternRow) -> Technique | None:
    obj = orjson.loads(row.content)
    if not isinstance(obj, dict):
        return None
    attack_id = attack_id_of(obj)
    if attack_id is None:
        return None
    url = next(
        (
            ref.get("url")
            for ref in obj.get("external_references", ())
            if isinstance(ref, dict) and ref.get("external_id") == attack_id
        ),
        None,
    )
    phases = obj.get("kill_chain_phases")
    tactics = tuple(
        p["phase_name"]
        for p in (phases if isinstance(phases, list) else ())
        if isinstance(p, dict) and isinstance(p.get("phase_name"), str)
    )
    domains = obj.get("x_mitre_domains")
    name = obj.get("name")
    description = obj.get("description")
    return Technique(
        attack_id=attack_id,
        stix_id=row.stix_id,
        name=name if isinstance(name, str) else attack_id,
        tactics=tactics,
        domains=tuple(d for d in domains if isinstance(d, str))
        if isinstance(domains, list)
        else (),
        is_subtechnique=obj.get("x_mitre_is_subtechnique") is True or "." in attack_id,
        deprecated=obj.get("x_mitre_deprecated") is True,
        url=url if isinstance(url, str) else None,
        description=description if isinstance(description, str) else None,
        reference=row.source.startswith(REFERENCE_SOURCE_PREFIX),
    )


@dataclass(frozen=True, slots=True)
class _Catalog:
    """The techniques the caller sees, by ATT&CK id, and every attack-pattern id that names
    each (reference data and orgs' own copies alike)."""

    techniques: dict[str, Technique]
    stix_ids: dict[str, list[str]]

    def refs_of(self, attack_ids: Sequence[str]) -> dict[str, str]:
        """stix id → ATT&CK id, for the attack-patterns naming ``attack_ids``."""
        return {sid: aid for aid in attack_ids for sid in self.stix_ids.get(aid, ())}


def _catalog(conn: Connection, principal: Principal) -> _Catalog:
    techniques: dict[str, Technique] = {}
    stix_ids: dict[str, list[str]] = defaultdict(list)
    # Oldest first: a later version of the description replaces an earlier one, and
    # reference data is preferred over an org's own copy of a technique.
    for row in store.attack_patterns(conn, principal):
        found = _technique(row)
        if found is None:
            continue
        stix_ids[found.attack_id].append(found.stix_id)
        known = techniques.get(found.attack_id)
        if known is None or found.reference or not known.reference:
            techniques[found.attack_id] = found
    return _Catalog(techniques, dict(stix_ids))


# --- counts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TechniqueFilter:
    """What a technique listing counts: the period (by when the link or sighting was added or
    seen), whose intelligence (an org or a country), which techniques (ATT&CK domain, tactic,
    deprecated ones), and whether sub-techniques roll up into their parent."""

    period: Period | None = None
    org: str | None = None
    country: str | None = None
    domain: str | None = None
    tactic: str | None = None
    rollup: bool = False
    by_org: bool = False
    include_deprecated: bool = False
    include_zero: bool = False


@dataclass(slots=True)
class _Tally:
    intelligence: set[str] = field(default_factory=set)
    by_type: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    sightings: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrgCounts:
    """One org's share of a technique's counts."""

    id: str
    name: str
    country: str
    intelligence: int
    sightings: int
    sighting_reports: int


@dataclass(frozen=True, slots=True)
class TechniqueCounts:
    """A technique with the counts a listing asked for."""

    technique: Technique
    intelligence: int
    intelligence_by_type: dict[str, int]
    sightings: int  # the sum of the sightings' counts
    sighting_reports: int  # how many sightings (STIX objects) said so
    orgs: list[OrgCounts] | None


@dataclass(frozen=True, slots=True)
class TechniquePage:
    period: Period | None
    items: list[TechniqueCounts]
    next_cursor: str | None


def _link_filter(conn: Connection, f: TechniqueFilter) -> LinkFilter:
    """The filter of related intelligence: the period, the org (id or name) and country."""
    org_id = None
    if f.org is not None:
        try:
            org_id = accounts_store.get_org(conn, f.org).id
        except NotFound:
            raise InvalidInput(f"org: no organization {f.org!r}", field="org") from None
    return LinkFilter(
        RELATED_TYPES,
        f.period.since if f.period else None,
        f.period.until if f.period else None,
        org_id,
        parse_field("country", parse_country, f.country),
    )


def _counts(
    conn: Connection,
    principal: Principal,
    refs: dict[str, str],
    link_filter: LinkFilter,
) -> dict[str, tuple[_Tally, dict[str, _Tally]]]:
    """Per ATT&CK id: the tally over all orgs and per org, over the attack-patterns ``refs``
    (stix id → the ATT&CK id it counts for). Distinct objects and sightings are counted once
    per ATT&CK id, however many of its attack-patterns they are linked to."""
    ids = sorted(refs)
    tallies: dict[str, tuple[_Tally, dict[str, _Tally]]] = {}

    def tally(attack_id: str, org: str) -> tuple[_Tally, _Tally]:
        whole, per_org = tallies.setdefault(attack_id, (_Tally(), {}))
        return whole, per_org.setdefault(org, _Tally())

    for ref, related, type_, owner in store.linked_objects(conn, principal, ids, link_filter):
        for t in tally(refs[ref], owner):
            t.intelligence.add(related)
            t.by_type[type_].add(related)
    for ref, indicator, owner, reports, total in store.linked_sightings(
        conn,
        principal,
        ids,
        since=link_filter.since,
        until=link_filter.until,
        owner_org_id=link_filter.owner_org_id,
        country=link_filter.country,
    ):
        for t in tally(refs[ref], owner):
            t.sightings[(indicator, owner)] = (reports, total)
    return tallies


def _summed(tally: _Tally | None) -> tuple[int, dict[str, int], int, int]:
    if tally is None:
        return 0, {}, 0, 0
    reports = sum(r for r, _ in tally.sightings.values())
    total = sum(c for _, c in tally.sightings.values())
    by_type = {k: len(v) for k, v in sorted(tally.by_type.items())}
    return len(tally.intelligence), by_type, total, reports


def _result(
    technique: Technique,
    counted: tuple[_Tally, dict[str, _Tally]] | None,
    by_org: bool,
    names: dict[str, tuple[str, str]],
) -> TechniqueCounts:
    whole, per_org = counted if counted is not None else (None, {})
    intelligence, by_type, sightings, reports = _summed(whole)
    orgs: list[OrgCounts] | None = None
    if by_org:
        orgs = []
        for org_id, t in per_org.items():
            n, _, s, r = _summed(t)
            name, country = names.get(org_id, (org_id, ""))
            orgs.append(OrgCounts(org_id, name, country, n, s, r))
        orgs.sort(key=lambda o: (-o.intelligence, -o.sightings, o.name))
    return TechniqueCounts(technique, intelligence, by_type, sightings, reports, orgs)


def _sort_key(item: TechniqueCounts, sort: str) -> tuple[Any, ...]:
    if sort == "sightings":
        return (-item.sightings, -item.intelligence, item.technique.attack_id)
    if sort == "intelligence":
        return (-item.intelligence, -item.sightings, item.technique.attack_id)
    return (item.technique.attack_id,)


def _encode_cursor(key: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[Any, ...]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = orjson.loads(raw)
    except (binascii.Error, ValueError):
        key = None
    width = 1 if sort == "attack_id" else 3
    if (
        not isinstance(key, list)
        or len(key) != width
        or not isinstance(key[-1], str)
        or not all(isinstance(k, int) and not isinstance(k, bool) for k in key[:-1])
    ):
        raise InvalidInput(f"{cursor!r} is not a page cursor of this sort", field="cursor")
    return tuple(key)


def _selected(catalog: _Catalog, f: TechniqueFilter) -> list[Technique]:
    chosen = []
    for technique in catalog.techniques.values():
        if f.rollup and technique.parent is not None:
            continue
        if technique.deprecated and not f.include_deprecated:
            continue
        if f.domain is not None and f.domain not in technique.domains:
            continue
        if f.tactic is not None and f.tactic not in technique.tactics:
            continue
        chosen.append(technique)
    return chosen


def _refs_for(catalog: _Catalog, techniques: Sequence[Technique], rollup: bool) -> dict[str, str]:
    wanted = {t.attack_id for t in techniques}
    refs = catalog.refs_of(sorted(wanted))
    if rollup:
        for attack_id, sids in catalog.stix_ids.items():
            parent = attack_id.split(".")[0]
            if parent != attack_id and parent in wanted:
                refs.update(dict.fromkeys(sids, parent))
    return refs


def list_techniques(
    conn: Connection,
    principal: Principal,
    f: TechniqueFilter,
    *,
    sort: str = "intelligence",
    cursor: str | None = None,
    limit: int = 50,
) -> TechniquePage:
    """One page of techniques with their counts, sorted by ``sort`` (``intelligence`` or
    ``sightings``: highest first, then the other count, then the ATT&CK id; ``attack_id``).
    Techniques with nothing counted are left out unless ``include_zero``."""
    if sort not in SORTS:
        raise InvalidInput(f"sort: use one of {', '.join(SORTS)}, not {sort!r}", field="sort")
    after = _decode_cursor(cursor, sort) if cursor else None
    catalog = _catalog(conn, principal)
    techniques = _selected(catalog, f)
    link_filter = _link_filter(conn, f)
    tallies = _counts(conn, principal, _refs_for(catalog, techniques, f.rollup), link_filter)
    owners = {o for _, per_org in tallies.values() for o in per_org} if f.by_org else set()
    names = store.org_names(conn, sorted(owners))
    items = [_result(t, tallies.get(t.attack_id), f.by_org, names) for t in techniques]
    if not f.include_zero:
        items = [i for i in items if i.intelligence or i.sightings or i.sighting_reports]
    keyed = sorted(((_sort_key(i, sort), i) for i in items), key=lambda pair: pair[0])
    if after is not None:
        keyed = [pair for pair in keyed if pair[0] > after]
    page = keyed[:limit]
    more = len(keyed) > limit
    return TechniquePage(
        f.period,
        [item for _, item in page],
        _encode_cursor(page[-1][0]) if more and page else None,
    )


@dataclass(frozen=True, slots=True)
class TechniqueDetail:
    """A technique, its counts, its sub-techniques and one page of its linked intelligence."""

    counts: TechniqueCounts
    subtechniques: list[Technique]
    items: list[StoredVersion]
    next_cursor: str | None


def show_technique(
    conn: Connection,
    principal: Principal,
    attack_id: str,
    f: TechniqueFilter,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> TechniqueDetail:
    """One technique (NotFound if the caller sees no technique of that ATT&CK id) with its
    counts and a keyset page (oldest ``date_added`` first) of the intelligence linked to it
    (with ``rollup``, to its sub-techniques too)."""
    wanted = attack_id.strip().upper()
    catalog = _catalog(conn, principal)
    technique = catalog.techniques.get(wanted)
    if technique is None:
        raise NotFound(f"no ATT&CK technique {attack_id!r}")
    after = decode_cursor(cursor) if cursor else None
    if after is not None and not 0 <= after < _MAX_POSITION:
        raise InvalidInput(f"{cursor!r} is not a valid page cursor", field="cursor")
    refs = _refs_for(catalog, [technique], f.rollup)
    link_filter = _link_filter(conn, f)
    tallies = _counts(conn, principal, refs, link_filter)
    counted = tallies.get(technique.attack_id)
    owners = sorted(counted[1]) if counted is not None and f.by_org else []
    counts = _result(technique, counted, f.by_org, store.org_names(conn, owners))
    rows = store.related_page(conn, principal, sorted(refs), link_filter, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    subtechniques = sorted(
        (t for t in catalog.techniques.values() if t.parent == technique.attack_id),
        key=lambda t: t.attack_id,
    )
    return TechniqueDetail(
        counts, subtechniques, rows, encode_cursor(rows[-1].date_added) if more else None
    )
