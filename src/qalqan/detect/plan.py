"""What an IOC sweep looks for: the indicators an org may use, as lookup tables.

A plan is data, not code: one table of indicator references and, per kind of value, a table of
the values to look for. The matcher (:mod:`qalqan.detect.matcher`) runs it over event batches;
the same tables could as well be broadcast to a distributed SQL engine. A plan is built once per
sweep from what :mod:`qalqan.store.detections` reads (already filtered by the handling policy),
or, in tests, from plain rows.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import idna
import numpy as np
import polars as pl
from stix2patterns.exceptions import ParseException
from stix2patterns.v21.pattern import Pattern

from qalqan.domain.handling import TLP

__all__ = [
    "HASH_KINDS",
    "IndicatorValue",
    "NetworkTable",
    "SearchPattern",
    "SweepPlan",
    "address_key",
    "build_plan",
    "like_to_regex",
    "search_patterns",
    "tlp_label",
]

HASH_KINDS: Final[tuple[str, ...]] = ("md5", "sha1", "sha256", "sha512")
_V4_MAPPED: Final = 0xFFFF << 32
_ACE_PREFIX: Final = "xn--"


@dataclass(frozen=True, slots=True)
class IndicatorValue:
    """One value an indicator names, with what a hit must report about the indicator.

    ``kind`` and ``value`` are canonical (``qalqan.domain.observables``); ``ip_start`` and
    ``ip_end`` are the 32-hex-digit range keys of ``ip`` and ``cidr`` values.
    """

    kind: str
    value: str
    stix_id: str
    name: str | None
    confidence: int | None
    tlp: int
    owner_org_id: str
    ip_start: str | None = None
    ip_end: str | None = None


@dataclass(frozen=True, slots=True)
class SearchPattern:
    """A ``LIKE`` or ``MATCHES`` comparison of an indicator, as a regular expression run over
    the event fields of ``kind`` (``domain``, ``url``, ``ip``, ``email`` or a hash kind)."""

    kind: str
    regex: str
    indicator: IndicatorValue


@dataclass(frozen=True, slots=True)
class NetworkTable:
    """IPv4 networks of one prefix length, for a binary search.

    ``networks`` are the sorted distinct network numbers (the address shifted right by
    ``32 - prefix``); the indicator references of ``networks[i]`` are
    ``refs[starts[i]:starts[i + 1]]``.
    """

    networks: np.ndarray
    refs: np.ndarray
    starts: np.ndarray
    series: pl.Series
    bitmap: np.ndarray | None = None
    """For prefixes up to /24: ``bitmap[n]`` is true when network number ``n`` is in the
    table (at most 16 MiB), so a lookup is one array index."""

    def contains(self, numbers: np.ndarray) -> np.ndarray:
        """Which network numbers are in the table."""
        if self.bitmap is not None:
            hit: np.ndarray = self.bitmap[numbers]
            return hit
        # A hash lookup: a binary search would jump around a large table for every event.
        found: np.ndarray = (
            pl.Series(numbers, dtype=pl.UInt32).is_in(self.series.implode()).to_numpy()
        )
        return found

    def expand(self, rows: np.ndarray, networks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, refs)``: each event row with a network of the table, once per reference of
        its network."""
        at = np.searchsorted(self.networks, networks.astype(np.uint32))
        counts = self.starts[at + 1] - self.starts[at]
        first = np.repeat(self.starts[at], counts)
        step = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(rows, counts), self.refs[first + step]

    def refs_of(self, network: int) -> list[int]:
        """The references of one network number (empty if it is not in the table)."""
        at = int(np.searchsorted(self.networks, network))
        if at == len(self.networks) or int(self.networks[at]) != network:
            return []
        return [int(r) for r in self.refs[self.starts[at] : self.starts[at + 1]]]


_BITMAP_PREFIX: Final = 24


def _network_table(prefix: int, pairs: list[tuple[int, int]]) -> NetworkTable:
    pairs.sort()
    numbers = np.array([n for n, _ in pairs], dtype=np.uint32)
    refs = np.array([r for _, r in pairs], dtype=np.uint32)
    networks, starts = np.unique(numbers, return_index=True)
    bitmap = None
    if prefix <= _BITMAP_PREFIX:
        bitmap = np.zeros(1 << prefix, dtype=np.bool_)
        bitmap[networks] = True
    return NetworkTable(
        networks,
        refs,
        np.append(starts, len(numbers)).astype(np.int64),
        pl.Series("network", networks, dtype=pl.UInt32),
        bitmap,
    )


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """Lookup tables of one sweep.

    ``refs`` has one row per indicator value (column ``ref`` is its row number) with the
    indicator's ``stix_id``, ``kind``, ``value``, ``name``, ``confidence``, ``tlp`` and
    ``owner_org_id``. The other tables map what an event may hold to ``ref``:

    - ``exact``: kind group (``domain``, ``url``, ``email``, ``hash``) → frame of
      ``key`` (String, as it would appear in a log, lowercase where case does not matter) and
      ``ref``;
    - ``domain_levels``: label counts of the domain indicators (which parent levels to try);
    - ``url_hosts``: hosts of URL indicators, the cheap first sieve for URL fields;
    - ``ipv4_networks``: prefix length → :class:`NetworkTable`, for IPv4 addresses (prefix 32)
      and networks;
    - ``ipv6_addresses``: IPv6 address indicators by their 128-bit number, and
      ``ipv6_ranges``: IPv6 CIDR ranges as ``(first, last, ref)`` integers (few), both matched
      on the distinct IPv6 values of a batch;
    - ``patterns``: ``LIKE``/``MATCHES`` comparisons with their ``ref``.
    """

    refs: pl.DataFrame
    exact: Mapping[str, pl.DataFrame]
    domain_levels: tuple[int, ...]
    url_hosts: pl.Series
    url_refs: Mapping[str, tuple[int, ...]]
    ipv4_networks: Mapping[int, NetworkTable]
    ipv6_ranges: tuple[tuple[int, int, int], ...]
    ipv6_addresses: Mapping[int, tuple[int, ...]]
    patterns: tuple[tuple[str, str, int], ...] = ()
    skipped: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        """How many indicator values take part."""
        return self.refs.height

    def is_empty(self) -> bool:
        """True when there is nothing to look for."""
        return self.refs.height == 0


def like_to_regex(like: str) -> str:
    """A STIX ``LIKE`` operand (SQL wildcards ``%`` and ``_``) as an anchored, case-insensitive
    regular expression."""
    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in like)
    return f"(?is)^{body}$"


_SEARCH_KINDS: Final[Mapping[str, str]] = {
    "ipv4-addr": "ip",
    "ipv6-addr": "ip",
    "domain-name": "domain",
    "url": "url",
    "email-addr": "email",
}


def search_patterns(
    pattern: str, indicator: IndicatorValue
) -> tuple[list[SearchPattern], list[str]]:
    """The ``LIKE`` and ``MATCHES`` comparisons of ``pattern`` on value paths, as search
    patterns, and why any other such comparison is left out (negated, on a path sweeps do not
    read, or an expression the regular-expression engine does not take)."""
    try:
        comparisons = Pattern(pattern).inspect().comparisons
    except (ParseException, RecursionError):
        return [], []
    found: list[SearchPattern] = []
    skipped: list[str] = []
    for sco_type, tests in comparisons.items():
        for path, operator, literal in tests:
            if operator not in ("LIKE", "MATCHES", "NOT LIKE", "NOT MATCHES"):
                continue
            where = f"{indicator.stix_id}: {sco_type}:{'.'.join(map(str, path))} {operator}"
            kind = _SEARCH_KINDS.get(sco_type) if list(path) == ["value"] else None
            if operator.startswith("NOT") or kind is None or not literal.startswith("'"):
                skipped.append(f"{where} is not used by sweeps")
                continue
            text = literal[1:-1].replace("\\'", "'").replace("\\\\", "\\")
            regex = like_to_regex(text) if operator == "LIKE" else text
            try:
                pl.select(pl.lit("").str.contains(regex))
            except pl.exceptions.PolarsError as exc:
                skipped.append(f"{where}: {str(exc).splitlines()[0]}")
                continue
            found.append(SearchPattern(kind, regex, indicator))
    return found, skipped


def _unicode_forms(domain: str) -> set[str]:
    """Other spellings a log may use for a canonical (ASCII) domain: the Unicode form of an
    internationalized name, so that a log that writes ``пример.рф`` meets ``xn--e1afmkfd.xn--p1ai``.
    """
    if _ACE_PREFIX not in domain:
        return set()
    try:
        return {idna.decode(domain).lower()}
    except idna.IDNAError:
        return set()


def _key_of(kind: str, value: str) -> tuple[str, str]:
    """The exact-lookup group and key of a canonical value."""
    if kind in HASH_KINDS:
        return "hash", value
    if kind == "email":
        return "email", value.lower()
    return kind, value


def build_plan(
    values: Iterable[IndicatorValue],
    patterns: Sequence[SearchPattern] = (),
    skipped: Sequence[str] = (),
) -> SweepPlan:
    """The lookup tables for ``values`` (canonical observables of active indicators) and
    ``patterns``. The same value named by several indicators gives one row per indicator."""
    refs: list[IndicatorValue] = []
    exact: dict[str, tuple[list[str], list[int]]] = defaultdict(lambda: ([], []))
    levels: set[int] = set()
    networks: dict[int, list[tuple[int, int]]] = defaultdict(list)
    v6_ranges: list[tuple[int, int, int]] = []
    v6_addresses: dict[int, list[int]] = defaultdict(list)
    url_refs: dict[str, list[int]] = defaultdict(list)
    hosts: set[str] = set()

    def add_exact(group: str, key: str, ref: int) -> None:
        keys, numbers = exact[group]
        keys.append(key)
        numbers.append(ref)

    for item in values:
        ref = len(refs)
        refs.append(item)
        kind, value = item.kind, item.value
        if kind in ("ip", "cidr"):
            first, last = int(item.ip_start or "0", 16), int(item.ip_end or "0", 16)
            if first >> 32 == 0xFFFF:
                prefix = 32 - (last - first).bit_length()
                networks[prefix].append(((first & 0xFFFFFFFF) >> (32 - prefix), ref))
                continue
            if kind == "cidr":
                v6_ranges.append((first, last, ref))
            else:
                v6_addresses[first].append(ref)
            continue
        group, key = _key_of(kind, value)
        add_exact(group, key, ref)
        if kind == "domain":
            levels.add(value.count(".") + 1)
            for form in _unicode_forms(value):
                add_exact("domain", form, ref)
        elif kind == "url":
            url_refs[value].append(ref)
            host = value.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
            host = host.rsplit(":", 1)[0] if not host.startswith("[") else host
            hosts.add(host)
            hosts.update(_unicode_forms(host))
    search: list[tuple[str, str, int]] = []
    for pattern in patterns:
        search.append((pattern.kind, pattern.regex, len(refs)))
        refs.append(pattern.indicator)
    refs_frame = pl.DataFrame(
        {
            "ref": pl.Series(range(len(refs)), dtype=pl.UInt32),
            "stix_id": [r.stix_id for r in refs],
            "kind": [r.kind for r in refs],
            "value": [r.value for r in refs],
            "name": [r.name for r in refs],
            "confidence": pl.Series([r.confidence for r in refs], dtype=pl.Int16),
            "tlp": pl.Series([r.tlp for r in refs], dtype=pl.Int8),
            "owner_org_id": [r.owner_org_id for r in refs],
        }
    )
    return SweepPlan(
        refs=refs_frame,
        exact={
            group: pl.DataFrame({"key": keys, "ref": pl.Series(numbers, dtype=pl.UInt32)}).unique(
                maintain_order=True
            )
            for group, (keys, numbers) in exact.items()
        },
        domain_levels=tuple(sorted(levels)),
        url_hosts=pl.Series("host", sorted(hosts), dtype=pl.String),
        url_refs={value: tuple(numbers) for value, numbers in url_refs.items()},
        ipv4_networks={
            prefix: _network_table(prefix, pairs) for prefix, pairs in sorted(networks.items())
        },
        ipv6_ranges=tuple(v6_ranges),
        ipv6_addresses={key: tuple(numbers) for key, numbers in v6_addresses.items()},
        patterns=tuple(search),
        skipped=tuple(skipped),
    )


def tlp_label(level: int) -> str:
    """``green``, ``amber+strict``, ... for a stored TLP level."""
    return TLP(level).label.lower()


def address_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """The 128-bit key of an address, IPv4 in the v4-mapped space (as the observable index)."""
    return int(address) | _V4_MAPPED if address.version == 4 else int(address)
