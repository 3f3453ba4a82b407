"""Correlation: who else reported or sighted a value, as far as the viewer may know.

Computed at read time from the observable index (see :mod:`qalqan.store.correlation`); nothing
is precomputed per pair, so a value named by 100,000 objects costs one index range, not five
billion rows. A value named by more visible objects than ``correlation_list_limit`` is
*over-correlating* (a resolver, a CDN address, a hash of a common DLL): it is summarized per
org and country instead of listed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection

from qalqan.domain.observables import InvalidObservable, Observable, parse_value
from qalqan.domain.principal import Principal
from qalqan.errors import InvalidInput
from qalqan.intel.reading import decode_cursor, encode_cursor, get_versions
from qalqan.store import correlation as store
from qalqan.store import objects as objects_store
from qalqan.store.correlation import OrgSummary, RelatedHit, SightingSummary

__all__ = [
    "LOOKUP_TYPES",
    "CountrySummary",
    "Related",
    "guess",
    "object_related",
    "parse_lookup",
    "related",
]

_HASHES: Final = ("md5", "sha1", "sha256", "sha512")
# The {type} of a lookup: a STIX cyber-observable type or one of the index's kinds, and the
# kinds of value it may hold.
LOOKUP_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "ipv4-addr": ("ip", "cidr"),
    "ipv6-addr": ("ip", "cidr"),
    "domain-name": ("domain",),
    "url": ("url",),
    "email-addr": ("email",),
    "file": _HASHES,
    "ip": ("ip", "cidr"),
    "cidr": ("ip", "cidr"),
    "domain": ("domain",),
    "email": ("email",),
    "hash": _HASHES,
    **{kind: (kind,) for kind in _HASHES},
}
_MAX_OBJECT_VALUES: Final = 50


@dataclass(frozen=True, slots=True)
class CountrySummary:
    country: str
    orgs: int
    objects: int


@dataclass(frozen=True, slots=True)
class Related:
    """What the viewer may know about a value: visible objects naming it or a relative of it."""

    value: Observable
    total: int  # visible objects (a lower bound when capped)
    over_correlating: bool
    list_limit: int
    orgs: list[OrgSummary]
    countries: list[CountrySummary]
    relations: dict[str, int]
    capped: bool
    sightings: list[SightingSummary]
    items: list[RelatedHit]
    next_cursor: str | None


def parse_lookup(type_name: str, value: str) -> Observable:
    """The canonical value of a lookup ``/observables/{type}/{value}``; InvalidInput naming the
    field when the type is unknown or the value is not of it. Defanged values are fine."""
    kinds = LOOKUP_TYPES.get(type_name.lower())
    if kinds is None:
        known = ", ".join(sorted(LOOKUP_TYPES))
        raise InvalidInput(f"unknown observable type {type_name!r}; known: {known}", field="type")
    try:
        wanted = parse_value(value, kinds[0] if len(kinds) == 1 else None)
    except InvalidObservable as exc:
        raise InvalidInput(str(exc), field="value") from None
    if wanted.kind not in kinds:
        raise InvalidInput(
            f"{value[:200]!r} reads as {wanted.kind}, which is not a {type_name} value",
            field="value",
        )
    return wanted


def guess(value: str) -> Observable:
    """The canonical value of text a person pasted, its kind guessed; InvalidInput if none."""
    try:
        return parse_value(value)
    except InvalidObservable as exc:
        raise InvalidInput(str(exc), field="value") from None


def _countries(orgs: list[OrgSummary]) -> list[CountrySummary]:
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for org in orgs:
        per[org.country][0] += 1
        per[org.country][1] += org.objects
    return sorted(
        (CountrySummary(c, n_orgs, n_objects) for c, (n_orgs, n_objects) in per.items()),
        key=lambda s: (-s.objects, s.country),
    )


def related(
    conn: Connection,
    principal: Principal,
    wanted: Observable,
    *,
    list_limit: int,
    cursor: str | None = None,
    limit: int = 100,
    but: str | None = None,
    with_items: bool = True,
) -> Related:
    """Visible objects naming ``wanted`` or a relative of it (leaving out the object ``but``):
    per-org and per-country summary, sightings, and — unless the value is over-correlating —
    one keyset page of the objects."""
    after = decode_cursor(cursor) if cursor else None
    relations = store.relations_of(wanted)
    orgs, by_relation, capped = store.summarize(conn, principal, relations, but)
    total = sum(org.objects for org in orgs)
    over = total > list_limit
    items: list[RelatedHit] = []
    next_cursor = None
    if with_items and not over:
        items = store.related_page(
            conn, principal, relations, after=after, limit=limit + 1, but=but
        )
        if len(items) > limit:
            items = items[:limit]
            next_cursor = encode_cursor(items[-1].entry_id)
    return Related(
        value=wanted,
        total=total,
        over_correlating=over,
        list_limit=list_limit,
        orgs=orgs,
        countries=_countries(orgs),
        relations=by_relation,
        capped=capped,
        sightings=store.sighting_summary(conn, principal, relations),
        items=items,
        next_cursor=next_cursor,
    )


def object_related(
    conn: Connection, principal: Principal, stix_id: str, *, list_limit: int
) -> list[Related]:
    """For each value a visible object names (its first 50), what else relates to it — the
    object itself left out. NotFound when the object is not visible."""
    latest = get_versions(conn, principal, stix_id, "last")[0]
    rows = objects_store.observables_of(conn, [latest.date_added]).get(latest.date_added, [])
    seen: set[tuple[str, str]] = set()
    found = []
    for kind, value, ip_start, ip_end, _listed in rows:
        if (kind, value) in seen:
            continue
        seen.add((kind, value))
        found.append(
            related(
                conn,
                principal,
                Observable(kind, value, ip_start, ip_end),
                list_limit=list_limit,
                but=stix_id,
                with_items=False,
            )
        )
        if len(found) == _MAX_OBJECT_VALUES:
            break
    return found
