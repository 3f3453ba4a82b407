"""Search: one query string, read as a value, a network, a domain suffix, a prefix or words.

Modes (``auto`` picks one from the query's shape; a caller may name one):

- ``exact``: an observable value of any kind, refanged and normalized (``hxxp://evil[.]example``,
  ``1.2.3.4``, a hash); an address also finds the networks that contain it;
- ``cidr``: everything inside a network (addresses and smaller networks) and the networks that
  contain it, as index ranges, however wide (``0.0.0.0/0`` pages like any other);
- ``suffix``: ``*.example.com`` or ``.example.com``: the domain and every domain under it;
- ``prefix``: ``foo*``: observable values of any kind that start with ``foo``;
- ``text``: words in names, descriptions, labels and aliases. Every character is text: quotes,
  ``*``, ``OR``, ``NEAR(``, ``%`` and ``_`` are searched as written, never as syntax.

Only the latest versions the principal may see, neither revoked nor withdrawn, are found, and
facets count only those.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection

from qalqan.domain.handling import TLP
from qalqan.domain.observables import InvalidObservable, normalize, parse_value, refang
from qalqan.domain.principal import Principal
from qalqan.domain.stix import format_timestamp
from qalqan.errors import InvalidInput
from qalqan.store import search as store
from qalqan.store.search import (
    SCORE_BANDS,
    FacetCounts,
    Position,
    SearchFilter,
    SearchHit,
    TextMatch,
    ValueMatch,
)

__all__ = [
    "FACET_CAP",
    "MAX_QUERY_LENGTH",
    "MODES",
    "SCORE_BANDS",
    "ParsedQuery",
    "SearchRequest",
    "SearchResult",
    "facets_dict",
    "hit_dict",
    "parse_query",
    "result_dict",
    "search",
]

MODES: Final[tuple[str, ...]] = ("auto", "exact", "cidr", "suffix", "prefix", "text")
MAX_QUERY_LENGTH: Final = 8192
FACET_CAP: Final = 10_000
_MAX_TERMS: Final = 32
_MAX_FILTER_VALUES: Final = 50
_SEGMENTS: Final = 8  # more than any search walks (see store.search)
# Control characters (NUL included) separate words; no database stores them in text.
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """What a query string was read as: the mode, and the value or words searched for.

    ``kind`` is the observable kind for ``exact`` and ``cidr`` (``domain`` for ``suffix``);
    ``value`` the normalized value, network, domain or prefix; ``terms`` the words of ``text``.
    """

    mode: str
    text: str
    match: ValueMatch | TextMatch
    kind: str | None = None
    value: str | None = None
    terms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A search as a caller asks for it; filter values are as typed (TLP names, bands)."""

    q: str
    mode: str = "auto"
    types: Sequence[str] = ()
    orgs: Sequence[str] = ()
    countries: Sequence[str] = ()
    tlps: Sequence[str] = ()
    labels: Sequence[str] = ()
    scores: Sequence[str] = ()
    cursor: str | None = None
    limit: int = 100
    facets: bool = False


@dataclass(frozen=True, slots=True)
class SearchResult:
    query: ParsedQuery
    hits: list[SearchHit]
    facets: FacetCounts | None
    next_cursor: str | None


def _clean(q: str) -> str:
    if len(q) > MAX_QUERY_LENGTH:
        raise InvalidInput(f"q is longer than {MAX_QUERY_LENGTH} characters", field="q")
    cleaned = _CONTROL_RE.sub(" ", q).strip()
    if not cleaned:
        raise InvalidInput(
            "q is empty: give a value, a network, *.domain, prefix* or words", field="q"
        )
    return cleaned


def _terms(text: str) -> tuple[str, ...]:
    """The words of a text search: split at spaces, each kept as written; pieces with no letter
    or digit (a lone ``"`` or ``*``) match nothing as words and are left out."""
    words = [word for word in text.split() if any(char.isalnum() for char in word)]
    if len(words) > _MAX_TERMS:
        raise InvalidInput(f"q has more than {_MAX_TERMS} words", field="q")
    return tuple(dict.fromkeys(words))


def _text_query(text: str) -> ParsedQuery:
    terms = _terms(text)
    return ParsedQuery("text", text, TextMatch(terms), terms=terms)


def _suffix_query(text: str) -> ParsedQuery:
    domain = refang(text).lstrip("*").lstrip(".")
    try:
        value = normalize("domain", domain).value
    except InvalidObservable as exc:
        raise InvalidInput(f"suffix: {exc}", field="q") from None
    return ParsedQuery("suffix", text, ValueMatch("suffix", value, "domain"), "domain", value)


def _prefix_query(text: str) -> ParsedQuery:
    prefix = refang(text.removesuffix("*"))
    if not prefix:
        raise InvalidInput("prefix: give at least one character before *", field="q")
    # Canonical values are lowercase but for a URL's path and query.
    if "://" not in prefix:
        prefix = prefix.lower()
    return ParsedQuery("prefix", text, ValueMatch("prefix", prefix), value=prefix)


def _value_query(text: str, mode: str) -> ParsedQuery:
    try:
        found = parse_value(text)
    except InvalidObservable as exc:
        raise InvalidInput(f"{mode}: {exc}", field="q") from None
    if mode == "auto":
        mode = "cidr" if found.kind == "cidr" else "exact"
    if mode == "cidr" and found.ip_start is None:
        raise InvalidInput(f"cidr: {text[:100]!r} is not an IP address or network", field="q")
    match = ValueMatch(mode, found.value, found.kind, found.ip_start, found.ip_end)
    return ParsedQuery(mode, text, match, found.kind, found.value)


def _looks_like_prefix(text: str) -> bool:
    return text.endswith("*") and text.count("*") == 1 and len(text) > 1 and " " not in text


def parse_query(q: str, mode: str = "auto") -> ParsedQuery:
    """Read a query string in ``mode`` (one of :data:`MODES`); InvalidInput when it cannot be
    read so. ``auto`` never fails on content: what is no value is searched as words."""
    if mode not in MODES:
        raise InvalidInput(f"unknown mode {mode!r}; use one of {', '.join(MODES)}", field="mode")
    text = _clean(q)
    if mode == "text":
        return _text_query(text)
    if mode == "suffix":
        return _suffix_query(text)
    if mode == "prefix":
        return _prefix_query(text)
    if mode in ("exact", "cidr"):
        return _value_query(text, mode)
    try:
        if text.startswith(("*.", ".")) and " " not in text:
            return _suffix_query(text)
        if _looks_like_prefix(text):
            return _prefix_query(text)
        return _value_query(text, "auto")
    except InvalidInput:
        return _text_query(text)


def _encode_cursor(mode: str, position: Position) -> str:
    raw = f"{mode}:{position[0]}:{position[1]}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, mode: str) -> Position:
    """The keyset position in a cursor of a search in ``mode``; InvalidInput otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        cursor_mode, segment, key = raw.split(":")
        position = (int(segment), int(key))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput(f"{cursor[:100]!r} is not a valid page cursor", field="cursor") from None
    if cursor_mode != mode or not (0 <= position[0] < _SEGMENTS and 0 <= position[1] < 2**63):
        raise InvalidInput("the cursor belongs to another search", field="cursor")
    return position


def _values(field: str, values: Sequence[str], *, lists: bool = True) -> list[str]:
    """Filter values without blanks; with ``lists``, each may be a comma list (not for names
    and labels, which may hold commas)."""
    parts = (v for value in values for v in (value.split(",") if lists else (value,)))
    found = [v.strip() for v in parts if v.strip()]
    if len(found) > _MAX_FILTER_VALUES:
        raise InvalidInput(f"{field}: at most {_MAX_FILTER_VALUES} values", field=field)
    return found


def _filter(request: SearchRequest) -> SearchFilter:
    tlps = []
    for value in _values("tlp", request.tlps):
        try:
            tlps.append(int(TLP.parse(value)))
        except ValueError as exc:
            raise InvalidInput(f"tlp: {exc}", field="tlp") from None
    bands = [band.lower() for band in _values("score", request.scores)]
    for band in bands:
        if band not in SCORE_BANDS:
            names = ", ".join(SCORE_BANDS)
            raise InvalidInput(f"score: unknown band {band!r}; use {names}", field="score")
    return SearchFilter(
        types=_values("type", request.types),
        owners=_values("org", request.orgs, lists=False),
        countries=[c.upper() for c in _values("country", request.countries)],
        tlps=tlps,
        labels=_values("label", request.labels, lists=False),
        score_bands=bands,
    )


def search(conn: Connection, principal: Principal, request: SearchRequest) -> SearchResult:
    """One keyset page of what ``request`` finds among what the principal may see, and (if
    asked) facets over at most :data:`FACET_CAP` matches of each index range walked."""
    query = parse_query(request.q, request.mode)
    f = _filter(request)
    if not 1 <= request.limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    after = _decode_cursor(request.cursor, query.mode) if request.cursor else None
    hits = store.search_page(conn, principal, query.match, f, after, request.limit + 1)
    more = len(hits) > request.limit
    hits = hits[: request.limit]
    facets = (
        store.facet_counts(conn, principal, query.match, f, FACET_CAP) if request.facets else None
    )
    next_cursor = _encode_cursor(query.mode, hits[-1].position) if more else None
    return SearchResult(query, hits, facets, next_cursor)


def hit_dict(hit: SearchHit) -> dict[str, Any]:
    """A hit as the API and ``--json`` show it."""
    return {
        "id": hit.stix_id,
        "type": hit.type,
        "name": hit.name,
        "handling": {
            "owner_org": {
                "id": hit.owner_org_id,
                "name": hit.owner_org_name,
                "country": hit.owner_country,
            },
            "tlp": TLP(hit.tlp).label,
            "distribution": hit.distribution,
            "sharing_group": hit.sharing_group_id,
            "date_added": format_timestamp(hit.date_added),
            "revoked": hit.revoked,
            "withdrawn": hit.withdrawn,
        },
        "matched": (
            {"kind": hit.matched_kind, "value": hit.matched_value}
            if hit.matched_kind is not None
            else None
        ),
        "score": hit.score,
    }


def _counts(counts: dict[Any, int]) -> list[dict[str, Any]]:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return [{"value": value, "count": n} for value, n in ordered]


def facets_dict(facets: FacetCounts) -> dict[str, Any]:
    """Facets as the API and ``--json`` show them: values with counts, most first."""
    return {
        "exact": facets.exact,
        "cap": FACET_CAP,
        "objects": facets.objects,
        "type": _counts(facets.types),
        "org": [
            {"id": org_id, "name": name, "country": country, "count": n}
            for org_id, name, country, n in facets.orgs
        ],
        "country": _counts(facets.countries),
        "tlp": _counts({TLP(level).label: n for level, n in facets.tlps.items()}),
        "label": _counts(facets.labels),
        "score": _counts(facets.score_bands),
    }


def result_dict(result: SearchResult) -> dict[str, Any]:
    """A search result as the API and ``--json`` show it."""
    query = result.query
    return {
        "query": {
            "q": query.text,
            "mode": query.mode,
            "kind": query.kind,
            "value": query.value,
            "terms": list(query.terms) if query.mode == "text" else None,
        },
        "items": [hit_dict(hit) for hit in result.hits],
        "facets": facets_dict(result.facets) if result.facets is not None else None,
        "next": result.next_cursor,
    }
