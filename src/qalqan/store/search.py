"""SQL of search: observable values (exact, CIDR ranges, domain suffixes, prefixes) and full text,
with filters, keyset pages and facets.

A search walks one or more *segments*, each an index range read in index order (an exact value,
the networks covering an address, the addresses inside a range, the domains under a suffix,
...), so a page costs about its size however wide the range: nothing is enumerated, and only
the small segments (one value, the networks around an address) are sorted. A keyset position
is ``(segment, key)``: the observable's id for value searches (its ordering column is read back
by id), the version's ``date_added`` for full text.

Every statement has ``policy.visible_to`` and the filters in its WHERE clause, before LIMIT:
what the caller may not see is never returned, paged or counted in a facet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    and_,
    case,
    column,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    text,
    union_all,
)

from qalqan.domain.principal import Principal
from qalqan.errors import InvalidInput
from qalqan.policy import visible_to
from qalqan.store.tables import TEXT_INDEX, indicator_scores, object_labels, orgs
from qalqan.store.tables import object_versions as ov
from qalqan.store.tables import observables as obs

__all__ = [
    "SCORE_BANDS",
    "FacetCounts",
    "Position",
    "SearchFilter",
    "SearchHit",
    "TextMatch",
    "ValueMatch",
    "facet_counts",
    "search_page",
]

# Score bands by the indicator's current score; "none": no score (yet) or not an indicator.
SCORE_BANDS: Final[tuple[str, ...]] = ("low", "medium", "high", "none")
_MEDIUM_FROM: Final = 30
_HIGH_FROM: Final = 70
_TOP_LABELS: Final = 50

Position = tuple[int, int]  # (segment, key): see the module docstring


@dataclass(frozen=True, slots=True)
class ValueMatch:
    """Which observable index entries match.

    ``how`` is ``exact`` (``kind`` and ``value``; an address also finds the networks that
    contain it), ``cidr`` (everything inside ``[ip_start, ip_end]`` and the networks that contain
    it), ``suffix`` (domains equal to or under ``value``) or ``prefix`` (values of any kind
    starting with ``value``).
    """

    how: str
    value: str
    kind: str | None = None
    ip_start: str | None = None
    ip_end: str | None = None


@dataclass(frozen=True, slots=True)
class TextMatch:
    """Full text: versions whose indexed text holds every one of ``terms`` (words, as given)."""

    terms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Filters on the matching versions; an empty sequence means "any"."""

    types: Sequence[str] = ()
    owners: Sequence[str] = ()  # org ids or names
    countries: Sequence[str] = ()
    tlps: Sequence[int] = ()
    labels: Sequence[str] = ()
    score_bands: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One match: the latest version of an object and, for value searches, the entry that
    matched."""

    position: Position
    stix_id: str
    type: str
    name: str | None
    date_added: int
    revoked: bool
    withdrawn: bool
    owner_org_id: str
    owner_org_name: str
    owner_country: str
    tlp: int
    distribution: str
    sharing_group_id: str | None
    score: int | None
    matched_kind: str | None
    matched_value: str | None


@dataclass(frozen=True, slots=True)
class FacetCounts:
    """Distinct matching objects per value of each facet, over at most ``cap`` matches per
    segment; ``exact`` is false when a segment reached the cap (it may have had more)."""

    objects: int
    exact: bool
    types: dict[str, int] = field(default_factory=dict)
    orgs: list[tuple[str, str, str, int]] = field(default_factory=list)  # id, name, country, n
    countries: dict[str, int] = field(default_factory=dict)
    tlps: dict[int, int] = field(default_factory=dict)
    score_bands: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Segment:
    """One index range: its condition and the column it is read in order of (after which the
    observable's id, or the version's date_added for text, breaks ties)."""

    where: ColumnElement[bool]
    order: ColumnElement[Any] | None


_text_sqlite = table(TEXT_INDEX, column("rowid"))
_text_pg = table(TEXT_INDEX, column("version_id"), column("tsv"))

_band = case(
    (indicator_scores.c.score.is_(None), literal("none")),
    (indicator_scores.c.score < _MEDIUM_FROM, literal("low")),
    (indicator_scores.c.score < _HIGH_FROM, literal("medium")),
    else_=literal("high"),
)

_VERSION_COLUMNS = (
    ov.c.stix_id,
    ov.c.type,
    ov.c.name,
    ov.c.date_added,
    ov.c.revoked,
    ov.c.withdrawn,
    ov.c.owner_org_id,
    orgs.c.name,
    orgs.c.country,
    ov.c.tlp,
    ov.c.distribution,
    ov.c.sharing_group_id,
    indicator_scores.c.score,
)


def _hit(
    position: Position, version: Sequence[Any], kind: str | None, value: str | None
) -> SearchHit:
    """A hit from the ``_VERSION_COLUMNS`` of a row and the entry that matched."""
    stix_id, type_, name, date_added, revoked, withdrawn, org_id, org_name, country = version[:9]
    tlp, distribution, sharing_group_id, score = version[9:]
    return SearchHit(
        position,
        stix_id,
        type_,
        name,
        date_added,
        revoked,
        withdrawn,
        org_id,
        org_name,
        country,
        tlp,
        distribution,
        sharing_group_id,
        score,
        kind,
        value,
    )


def _bytewise(conn: Connection) -> bool:
    """Does the database compare text in code point order? SQLite always does; PostgreSQL does
    under the C collations. Asked once per connection."""
    if conn.dialect.name != "postgresql":
        return True
    info = conn.connection.info
    if "qalqan_bytewise" not in info:
        # Under a linguistic collation "-" is ignored and case comes second.
        probe = text("SELECT 'a-c' < 'ab' AND 'B' < 'a'")
        info["qalqan_bytewise"] = bool(conn.execute(probe).scalar())
    return bool(info["qalqan_bytewise"])


def _ordered(conn: Connection, col: ColumnElement[Any]) -> ColumnElement[Any]:
    """``col`` compared in code point order, so a range of strings is a range of prefixes."""
    return col if _bytewise(conn) else col.collate("C")


def _prefix_range(col: ColumnElement[Any], prefix: str) -> ColumnElement[bool]:
    """``col`` starts with ``prefix``, as a range an index can read: ``[prefix, next)``."""
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return col >= prefix
    return and_(col >= prefix, col < prefix[:-1] + chr(last + 1))


def _network_starts(key: str) -> list[str]:
    """The ``ip_key`` of the first address of every network (/0 to /128) containing ``key``."""
    number = int(key, 16)
    return sorted({f"{number >> bits << bits:032x}" for bits in range(129)})


def _segments(conn: Connection, match: ValueMatch) -> list[_Segment]:
    """The index ranges of a value search, in the order pages walk them."""
    if match.how == "suffix":
        # Only domains have an rvalue: no condition on the kind, which the planner might
        # prefer to read by (all domains) over the range it should read.
        reverse = match.value[::-1]
        rvalue = _ordered(conn, obs.c.rvalue)
        return [
            _Segment(obs.c.rvalue == reverse, None),
            _Segment(_prefix_range(rvalue, reverse + "."), rvalue),
        ]
    if match.how == "prefix":
        value = _ordered(conn, obs.c.value)
        return [_Segment(_prefix_range(value, match.value), value)]
    lo, hi = match.ip_start, match.ip_end
    if lo is None or hi is None:
        return [_Segment(and_(obs.c.value == match.value, obs.c.kind == match.kind), None)]
    # Networks are stored with their host bits cleared, so one that contains [lo, hi] starts at
    # lo with some low bits cleared: at most 129 index probes.
    covering = and_(
        obs.c.kind == "cidr", obs.c.ip_start.in_(_network_starts(lo)), obs.c.ip_end >= hi
    )
    if match.how == "exact":
        return [
            _Segment(and_(obs.c.value == match.value, obs.c.kind == match.kind), None),
            _Segment(and_(covering, or_(obs.c.ip_start < lo, obs.c.ip_end > hi)), None),
        ]
    inside = and_(obs.c.ip_start >= lo, obs.c.ip_start <= hi)
    return [
        _Segment(and_(covering, or_(obs.c.ip_start < lo, obs.c.ip_end > hi)), None),
        _Segment(and_(obs.c.kind == "cidr", inside, obs.c.ip_end <= hi), obs.c.ip_start),
        _Segment(and_(obs.c.kind == "ip", inside), obs.c.ip_start),
    ]


def _filtered(stmt: Select[Any], principal: Principal, f: SearchFilter) -> Select[Any]:
    stmt = stmt.join(orgs, orgs.c.id == ov.c.owner_org_id).outerjoin(
        indicator_scores, indicator_scores.c.stix_id == ov.c.stix_id
    )
    stmt = stmt.where(
        ov.c.is_latest.is_(True),
        ov.c.withdrawn.is_(False),
        ov.c.revoked.is_(False),
        visible_to(principal, ov),
    )
    if f.types:
        stmt = stmt.where(ov.c.type.in_(list(f.types)))
    if f.owners:
        owners = list(f.owners)
        stmt = stmt.where(or_(orgs.c.id.in_(owners), orgs.c.name.in_(owners)))
    if f.countries:
        stmt = stmt.where(orgs.c.country.in_(list(f.countries)))
    if f.tlps:
        stmt = stmt.where(ov.c.tlp.in_(list(f.tlps)))
    if f.labels:
        stmt = stmt.where(
            exists().where(
                object_labels.c.version_id == ov.c.date_added,
                object_labels.c.label.in_(list(f.labels)),
            )
        )
    if f.score_bands:
        stmt = stmt.where(_band.in_(list(f.score_bands)))
    return stmt


def _value_select(
    principal: Principal, f: SearchFilter, segment: _Segment, columns: Sequence[Any]
) -> Select[Any]:
    stmt = select(*columns).select_from(obs).join(ov, ov.c.date_added == obs.c.version_id)
    return _filtered(stmt, principal, f).where(segment.where)


def _after_key(conn: Connection, segment: _Segment, after: int) -> ColumnElement[bool]:
    """The keyset condition "after observable ``after``" in a segment read in order of
    ``segment.order`` then id."""
    if segment.order is None:
        return obs.c.id > after
    last = conn.execute(select(segment.order).where(obs.c.id == after)).scalar()
    if last is None:
        raise InvalidInput("the page cursor points at an entry that is gone", field="cursor")
    # The first bound alone is what the index reads from; the second breaks ties.
    return and_(segment.order >= last, or_(segment.order > last, obs.c.id > after))


def _value_page(
    conn: Connection,
    principal: Principal,
    match: ValueMatch,
    f: SearchFilter,
    after: Position | None,
    limit: int,
) -> list[SearchHit]:
    segments = _segments(conn, match)
    first = after[0] if after is not None else 0
    hits: list[SearchHit] = []
    columns = (obs.c.id, obs.c.kind, obs.c.value, *_VERSION_COLUMNS)
    for index in range(first, len(segments)):
        segment = segments[index]
        stmt = _value_select(principal, f, segment, columns)
        if after is not None and index == first:
            stmt = stmt.where(_after_key(conn, segment, after[1]))
        order = (obs.c.id,) if segment.order is None else (segment.order, obs.c.id)
        stmt = stmt.order_by(*order).limit(limit - len(hits))
        for row in conn.execute(stmt):
            hits.append(_hit((index, row[0]), row[3:], row[1], row[2]))
        if len(hits) >= limit:
            break
    return hits


def _fts5_query(terms: Sequence[str]) -> str:
    """An FTS5 query that takes every term as plain text: each a quoted string (quotes inside
    doubled), all required. Operators, column filters, ``*`` and ``NEAR`` lose their meaning."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


def _text_select(
    conn: Connection,
    principal: Principal,
    match: TextMatch,
    f: SearchFilter,
    columns: Sequence[Any],
) -> tuple[Select[Any], ColumnElement[Any]]:
    """The matching versions, and the column that orders them (their ``date_added``)."""
    if conn.dialect.name == "sqlite":
        key = _text_sqlite.c.rowid
        stmt = select(*columns).select_from(_text_sqlite).join(ov, ov.c.date_added == key)
        found = literal_column(TEXT_INDEX).op("MATCH")(_fts5_query(match.terms))
    else:
        key = _text_pg.c.version_id
        stmt = select(*columns).select_from(_text_pg).join(ov, ov.c.date_added == key)
        query = func.plainto_tsquery(literal_column("'simple'::regconfig"), " ".join(match.terms))
        found = _text_pg.c.tsv.op("@@")(query)
    return _filtered(stmt, principal, f).where(found), key


def _text_page(
    conn: Connection,
    principal: Principal,
    match: TextMatch,
    f: SearchFilter,
    after: Position | None,
    limit: int,
) -> list[SearchHit]:
    stmt, key = _text_select(conn, principal, match, f, _VERSION_COLUMNS)
    if after is not None:
        stmt = stmt.where(key < after[1])
    # Newest first: the index gives that order for free on SQLite.
    stmt = stmt.order_by(key.desc()).limit(limit)
    return [_hit((0, row[3]), row, None, None) for row in conn.execute(stmt)]


def search_page(
    conn: Connection,
    principal: Principal,
    match: ValueMatch | TextMatch,
    f: SearchFilter,
    after: Position | None,
    limit: int,
) -> list[SearchHit]:
    """Up to ``limit`` matches after keyset position ``after``, among the latest versions
    (neither revoked nor withdrawn) the principal may see. Value searches give one hit per
    matching index entry, in index order; full text one per version, newest first."""
    if isinstance(match, TextMatch):
        if not match.terms:
            return []
        return _text_page(conn, principal, match, f, after, limit)
    return _value_page(conn, principal, match, f, after, limit)


_FACET_COLUMNS = (
    ov.c.date_added.label("version"),
    ov.c.type.label("type"),
    ov.c.owner_org_id.label("org_id"),
    orgs.c.name.label("org_name"),
    orgs.c.country.label("country"),
    ov.c.tlp.label("tlp"),
    _band.label("band"),
)


def _capped_matches(
    conn: Connection,
    principal: Principal,
    match: ValueMatch | TextMatch,
    f: SearchFilter,
    cap: int,
) -> tuple[FromClause, int]:
    """The first ``cap`` matches of each segment (``_FACET_COLUMNS`` and ``part``, the
    segment's index), and how many segments there are."""
    if isinstance(match, TextMatch):
        stmt, key = _text_select(conn, principal, match, f, _FACET_COLUMNS)
        parts = [stmt.order_by(key.desc())]
    else:
        parts = [
            _value_select(principal, f, segment, _FACET_COLUMNS).order_by(
                *((obs.c.id,) if segment.order is None else (segment.order, obs.c.id))
            )
            for segment in _segments(conn, match)
        ]
    # Each part is limited on its own (a LIMIT inside a compound needs a subquery of its own).
    limited = [
        select(literal(index).label("part"), *part.limit(cap).subquery().c)
        for index, part in enumerate(parts)
    ]
    return union_all(*limited).subquery(), len(limited)


def facet_counts(
    conn: Connection,
    principal: Principal,
    match: ValueMatch | TextMatch,
    f: SearchFilter,
    cap: int,
) -> FacetCounts:
    """How the first ``cap`` matches of each segment spread over type, owner org, country,
    TLP, score band and label, counted as distinct objects. Only what the principal may see is
    counted: the facets use the same statements as the pages."""
    if isinstance(match, TextMatch) and not match.terms:
        return FacetCounts(0, True)
    capped, segments = _capped_matches(conn, principal, match, f, cap)
    keys = (
        capped.c.type,
        capped.c.org_id,
        capped.c.org_name,
        capped.c.country,
        capped.c.tlp,
        capped.c.band,
    )
    # Every object falls in exactly one group, so the groups add up to each facet's counts;
    # the rows each segment gave say whether one was cut at the cap.
    per_segment = [func.sum(case((capped.c.part == i, 1), else_=0)) for i in range(segments)]
    groups = select(*keys, func.count(capped.c.version.distinct()), *per_segment).group_by(*keys)
    counts = FacetCounts(0, True)
    per_org: dict[str, tuple[str, str, str, int]] = {}
    sizes = [0] * segments
    total = 0
    for type_, org_id, org_name, country, tlp, band, n, *rows in conn.execute(groups):
        total += n
        sizes = [size + int(more) for size, more in zip(sizes, rows, strict=True)]
        counts.types[type_] = counts.types.get(type_, 0) + n
        seen = per_org.get(org_id, (org_id, org_name, country, 0))
        per_org[org_id] = (org_id, org_name, country, seen[3] + n)
        counts.countries[country] = counts.countries.get(country, 0) + n
        counts.tlps[tlp] = counts.tlps.get(tlp, 0) + n
        counts.score_bands[band] = counts.score_bands.get(band, 0) + n
    label_count = func.count(object_labels.c.version_id.distinct())
    labels = (
        select(object_labels.c.label, label_count)
        .where(object_labels.c.version_id.in_(select(capped.c.version)))
        .group_by(object_labels.c.label)
        .order_by(label_count.desc(), object_labels.c.label)
        .limit(_TOP_LABELS)
    )
    return FacetCounts(
        total,
        all(size < cap for size in sizes),
        counts.types,
        sorted(per_org.values(), key=lambda org: (-org[3], org[1])),
        counts.countries,
        counts.tlps,
        counts.score_bands,
        {str(label): int(n) for label, n in conn.execute(labels)},
    )
