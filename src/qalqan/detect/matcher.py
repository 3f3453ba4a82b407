"""The IOC sweep engine: match event fields against a :class:`~qalqan.detect.plan.SweepPlan`.

Every step works on whole columns (Polars hash joins and string kernels); Python only touches
the few values a vectorized sieve has already picked out (URL candidates, IPv6 spellings other
than the canonical one). What a field holds is said by a *field kind*:

``ip``       an address; hits exact address indicators and CIDR indicators that contain it
``domain``   a domain name; hits the name and every parent (``a.b.evil.com`` hits ``evil.com``)
``url``      a URL; hits URL indicators after normalization, and its host as ``host``
``host``     an address or a domain name
``email``    an email address
``md5`` ``sha1`` ``sha256`` ``sha512``   a file hash of that algorithm
``hash`` ``hashes``   any hash, or a list such as ``SHA1=...,MD5=...`` (Sysmon): every run
             of 32, 40, 64 or 128 hex digits in it is looked up

A field that holds several values (a JSON list such as ``["a","b"]``, or values joined by
commas as Zeek writes sets) is matched value by value, except for URLs, where a comma is part
of the URL.

Values are compared as the log writes them, except that case never matters (nor a trailing dot
of a domain), IPv6 addresses in any spelling meet their canonical form, and URLs are normalized
as the observable index normalizes them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import Final

import numpy as np
import polars as pl

from qalqan.detect.plan import SweepPlan, address_key
from qalqan.domain.observables import InvalidObservable, normalize
from qalqan.errors import InvalidInput

__all__ = [
    "FIELD_KINDS",
    "HIT_SCHEMA",
    "KIND_ALIASES",
    "field_kind",
    "match_iocs",
    "parse_field_map",
]

FIELD_KINDS: Final[tuple[str, ...]] = (
    "ip",
    "domain",
    "url",
    "host",
    "email",
    "md5",
    "sha1",
    "sha256",
    "sha512",
    "hash",
    "hashes",
)
# STIX type names and other spellings people use in --map.
KIND_ALIASES: Final[Mapping[str, str]] = {
    "ipv4-addr": "ip",
    "ipv6-addr": "ip",
    "ipv4": "ip",
    "ipv6": "ip",
    "address": "ip",
    "domain-name": "domain",
    "hostname": "host",
    "email-addr": "email",
    "sha-1": "sha1",
    "sha-256": "sha256",
    "sha-512": "sha512",
}
HIT_SCHEMA: Final = {"row": pl.UInt32, "field": pl.String, "ref": pl.UInt32}

_ROW: Final = "row"
_V: Final = "v"
_IPV4_PARTS: Final = ("p0", "p1", "p2", "p3")
_URL_HOST_RE: Final = r"^\s*[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@\s]*@)?(\[[^\]/?#]*\]|[^/?#:\s]*)"
_HEX_RUN_RE: Final = r"[0-9A-Fa-f]{32,128}"
_HASH_LENGTHS: Final = (32, 40, 64, 128)


def field_kind(name: str) -> str:
    """The field kind ``name`` stands for; raises ``ValueError`` listing the known ones."""
    kind = KIND_ALIASES.get(name.lower(), name.lower())
    if kind not in FIELD_KINDS:
        known = ", ".join(FIELD_KINDS)
        raise ValueError(f"unknown field kind {name!r}; known kinds: {known}")
    return kind


def parse_field_map(entries: Sequence[str]) -> dict[str, str] | None:
    """``FIELD=KIND`` entries (``--map``) as ``{field: kind}``; None when there are none.
    Raises ``InvalidInput`` naming the entry that is wrong and why."""
    if not entries:
        return None
    fields: dict[str, str] = {}
    for entry in entries:
        name, sep, kind = entry.partition("=")
        if not sep or not name.strip() or not kind.strip():
            raise InvalidInput(f"map {entry!r}: write FIELD=KIND, e.g. query=domain", field="map")
        try:
            fields[name.strip()] = field_kind(kind.strip())
        except ValueError as exc:
            raise InvalidInput(f"map {entry!r}: {exc}", field="map") from None
    return fields


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=HIT_SCHEMA)


def _hits(rows: pl.DataFrame, table: pl.DataFrame, field: str) -> pl.DataFrame:
    """``(row, field, ref)`` for the rows whose ``v`` is a ``key`` of ``table``."""
    joined = rows.join(table, left_on=_V, right_on="key", how="inner")
    return joined.select(pl.col(_ROW), pl.lit(field, dtype=pl.String).alias("field"), pl.col("ref"))


def _lookup(frame: pl.DataFrame, table: pl.DataFrame | None, field: str) -> pl.DataFrame:
    """Exact lookup of column ``v`` of ``frame`` (with ``row``) in ``table``: the sieve is a
    vectorized membership test, the join runs only on the rows that passed it."""
    if table is None or frame.height == 0:
        return _empty()
    found = frame.filter(pl.col(_V).is_in(table["key"].implode()))
    return _hits(found, table, field) if found.height else _empty()


def _ipv4_numbers(frame: pl.DataFrame) -> pl.DataFrame:
    """``(row, address)`` of the values that are dotted-quad IPv4 addresses in canonical
    form (decimal octets without signs or leading zeros), as numbers."""
    parts = frame.select(
        pl.col(_ROW),
        pl.col(_V).str.len_bytes().alias("length"),
        pl.col(_V).str.splitn(".", 4).struct.rename_fields(list(_IPV4_PARTS)),
    ).unnest(_V)
    numbers = [pl.col(p).cast(pl.UInt32, strict=False) for p in _IPV4_PARTS]
    # The text is canonical when it is exactly as long as the octets written plainly: that
    # refuses "01", "+1" and spaces without a regular expression.
    plain_length = sum(
        (1 + (n >= 10).cast(pl.UInt32) + (n >= 100).cast(pl.UInt32)) for n in numbers
    )
    valid = (
        pl.all_horizontal([n <= 255 for n in numbers]) & (pl.col("length") == plain_length + 3)
    ).fill_null(False)
    address = (
        (numbers[0] * 16_777_216) + (numbers[1] * 65_536) + (numbers[2] * 256) + numbers[3]
    ).alias("address")
    return parts.filter(valid).select(pl.col(_ROW), address)


def _match_ip(plan: SweepPlan, frame: pl.DataFrame, field: str) -> list[pl.DataFrame]:
    """IPv4 addresses by arithmetic: for each prefix length of the plan (32 for single
    addresses), a hash lookup of the shifted address among the networks. Other spellings
    (IPv6, v4-mapped) are read one distinct value at a time."""
    out: list[pl.DataFrame] = []
    if plan.ipv4_networks:
        addresses = _ipv4_numbers(frame)
        rows = addresses[_ROW].to_numpy()
        numbers = addresses["address"].to_numpy()
        for prefix, table in plan.ipv4_networks.items():
            networks = numbers >> np.uint32(32 - prefix) if prefix < 32 else numbers
            hit = table.contains(networks)
            if not hit.any():
                continue
            # A network named by several indicators: one hit per indicator.
            hit_rows, refs = table.expand(rows[hit], networks[hit])
            out.append(
                pl.DataFrame(
                    {
                        _ROW: pl.Series(hit_rows, dtype=pl.UInt32),
                        "field": pl.Series([field] * len(hit_rows), dtype=pl.String),
                        "ref": pl.Series(refs, dtype=pl.UInt32),
                    }
                )
            )
    out.append(_match_ipv6_spellings(plan, frame, field))
    return out


def _ip_refs(plan: SweepPlan, canonical: str) -> list[int]:
    """The references an address (canonical text) hits: exact IPv6, IPv6 networks, and for a
    v4-mapped address every IPv4 table."""
    key = address_key(ipaddress.ip_address(canonical.removeprefix("::ffff:")))
    refs: list[int] = []
    if key >> 32 == 0xFFFF:
        v4 = key & 0xFFFFFFFF
        for prefix, table in plan.ipv4_networks.items():
            refs.extend(table.refs_of(v4 >> (32 - prefix)))
        return refs
    refs.extend(plan.ipv6_addresses.get(key, ()))
    refs.extend(ref for first, last, ref in plan.ipv6_ranges if first <= key <= last)
    return refs


def _match_ipv6_spellings(plan: SweepPlan, frame: pl.DataFrame, field: str) -> pl.DataFrame:
    """Values with a colon, read one distinct value at a time (IPv6 is rare in most logs and
    has many spellings of one address)."""
    candidates = frame.filter(pl.col(_V).str.contains(":", literal=True))
    if candidates.height == 0:
        return _empty()
    found: dict[str, list[int]] = {}
    for value in candidates[_V].unique().to_list():
        try:
            observable = normalize("ip", value)
        except InvalidObservable:
            continue
        if observable.kind == "ip":
            refs = _ip_refs(plan, observable.value)
            if refs:
                found[value] = refs
    if not found:
        return _empty()
    table = pl.DataFrame(
        {
            "key": [v for v, refs in found.items() for _ in refs],
            "ref": pl.Series([r for refs in found.values() for r in refs], dtype=pl.UInt32),
        }
    )
    return _hits(candidates, table, field)


def _folded(frame: pl.DataFrame) -> pl.DataFrame:
    """Names lowercased and without a trailing dot. Each step runs only when some value needs
    it: most logs write names in lowercase already, and a scan is cheaper than a copy."""
    value = pl.col(_V)
    if frame.select(value.str.contains("[A-Z]|[^\\x00-\\x7f]").any()).item():
        frame = frame.with_columns(value.str.to_lowercase())
    if frame.select(value.str.ends_with(".").any()).item():
        frame = frame.with_columns(value.str.strip_suffix("."))
    return frame


def _match_domain(plan: SweepPlan, frame: pl.DataFrame, field: str) -> list[pl.DataFrame]:
    """The name, then each parent that has as many labels as some domain indicator."""
    table = plan.exact.get("domain")
    if table is None or not plan.domain_levels:
        return []
    keys = table["key"].implode()
    levels = list(plan.domain_levels)
    shallowest = levels[0]
    current = _folded(frame)
    labels = (pl.col(_V).str.count_matches(".", literal=True) + 1).cast(pl.Int32)
    current = current.with_columns(labels.alias("n")).filter(pl.col("n") >= shallowest)
    out: list[pl.DataFrame] = []
    while current.height:
        found = current.filter(pl.col("n").is_in(levels) & pl.col(_V).is_in(keys))
        if found.height:
            out.append(_hits(found, table, field))
        current = current.filter(pl.col("n") > shallowest).select(
            pl.col(_ROW),
            pl.col(_V).str.splitn(".", 2).struct.field("field_1").alias(_V),
            pl.col("n") - 1,
        )
    return out


def _url_hosts(frame: pl.DataFrame) -> pl.DataFrame:
    """``(row, v)`` with the host of each URL (brackets of an IPv6 host removed)."""
    host = pl.col(_V).str.extract(_URL_HOST_RE, 1)
    return frame.select(
        pl.col(_ROW), host.str.strip_prefix("[").str.strip_suffix("]").alias(_V)
    ).filter(pl.col(_V).is_not_null() & (pl.col(_V) != ""))


def _match_url(plan: SweepPlan, frame: pl.DataFrame, field: str) -> list[pl.DataFrame]:
    """URL indicators: a host sieve, then the normalized URL of the few that pass; the host
    also goes to the address and domain matchers."""
    hosts = _url_hosts(frame)
    out: list[pl.DataFrame] = []
    if plan.url_refs:
        lowered = hosts.select(
            pl.col(_ROW), pl.col(_V).str.to_lowercase().str.strip_suffix(".").alias(_V)
        )
        rows = lowered.filter(pl.col(_V).is_in(plan.url_hosts.implode()))[_ROW]
        if rows.len():
            candidates = frame.filter(pl.col(_ROW).is_in(rows.implode()))
            found: dict[str, tuple[int, ...]] = {}
            for value in candidates[_V].unique().to_list():
                try:
                    canonical = normalize("url", value).value
                except InvalidObservable:
                    continue
                refs = plan.url_refs.get(canonical)
                if refs:
                    found[value] = refs
            if found:
                table = pl.DataFrame(
                    {
                        "key": [v for v, refs in found.items() for _ in refs],
                        "ref": pl.Series(
                            [r for refs in found.values() for r in refs], dtype=pl.UInt32
                        ),
                    }
                )
                out.append(_hits(candidates, table, field))
    out.extend(_match_ip(plan, hosts, field))
    out.extend(_match_domain(plan, hosts, field))
    return out


def _match_lowercase(
    plan: SweepPlan, frame: pl.DataFrame, field: str, group: str
) -> list[pl.DataFrame]:
    lowered = frame.select(pl.col(_ROW), pl.col(_V).str.to_lowercase().alias(_V))
    return [_lookup(lowered, plan.exact.get(group), field)]


def _match_hashes(plan: SweepPlan, frame: pl.DataFrame, field: str) -> list[pl.DataFrame]:
    runs = (
        frame.select(pl.col(_ROW), pl.col(_V).str.extract_all(_HEX_RUN_RE).alias(_V))
        .explode(_V)
        .filter(pl.col(_V).str.len_bytes().is_in(list(_HASH_LENGTHS)))
    )
    return _match_lowercase(plan, runs, field, "hash")


def _match_patterns(
    plan: SweepPlan, frame: pl.DataFrame, field: str, kind: str
) -> list[pl.DataFrame]:
    wanted = {
        "ip": ("ip",),
        "host": ("ip", "domain"),
        "domain": ("domain",),
        "url": ("url",),
        "email": ("email",),
        "hashes": ("md5", "sha1", "sha256", "sha512"),
        "hash": ("md5", "sha1", "sha256", "sha512"),
    }.get(kind, (kind,))
    out: list[pl.DataFrame] = []
    for pattern_kind, regex, ref in plan.patterns:
        if pattern_kind not in wanted:
            continue
        found = frame.filter(pl.col(_V).str.contains(regex).fill_null(False))
        if found.height:
            out.append(
                found.select(
                    pl.col(_ROW),
                    pl.lit(field, dtype=pl.String).alias("field"),
                    pl.lit(ref, dtype=pl.UInt32).alias("ref"),
                )
            )
    return out


def _match_field(plan: SweepPlan, frame: pl.DataFrame, field: str, kind: str) -> list[pl.DataFrame]:
    if kind == "ip":
        return _match_ip(plan, frame, field)
    if kind == "domain":
        return _match_domain(plan, frame, field)
    if kind == "host":
        return _match_ip(plan, frame, field) + _match_domain(plan, frame, field)
    if kind == "url":
        return _match_url(plan, frame, field)
    if kind == "email":
        return _match_lowercase(plan, frame, field, "email")
    if kind in ("hash", "hashes"):
        return _match_hashes(plan, frame, field)
    return _match_lowercase(plan, frame, field, "hash")


_LISTED: Final = ("ip", "domain", "host", "email", "md5", "sha1", "sha256", "sha512")


def _list_items(values: pl.DataFrame) -> pl.DataFrame:
    """``(row, v)`` for each item of the values that are lists (JSON or comma-joined)."""
    listed = values.filter(
        pl.col(_V).str.contains(",", literal=True) | pl.col(_V).str.starts_with("[")
    )
    if listed.height == 0:
        return listed
    return (
        listed.with_columns(pl.col(_V).str.strip_chars("[] ").str.split(","))
        .explode(_V)
        .with_columns(pl.col(_V).str.strip_chars(' "'))
        .filter(pl.col(_V) != "")
    )


def _match_column(
    plan: SweepPlan, frame: pl.DataFrame, field: str, kind: str
) -> list[pl.DataFrame]:
    column = frame.get_column(field)
    if column.dtype != pl.String:
        column = column.cast(pl.String, strict=False)
    values = pl.DataFrame(
        {_ROW: pl.int_range(0, frame.height, dtype=pl.UInt32, eager=True), _V: column}
    ).filter(pl.col(_V).is_not_null())
    if kind in _LISTED:
        items = _list_items(values)
        if items.height:
            values = pl.concat([values, items], how="vertical")
    parts = _match_field(plan, values, field, kind)
    if plan.patterns:
        parts.extend(_match_patterns(plan, values, field, kind))
    return parts


def match_iocs(
    plan: SweepPlan,
    frame: pl.DataFrame,
    fields: Mapping[str, str],
    pool: Executor | None = None,
) -> pl.DataFrame:
    """``(row, field, ref)`` for every event of ``frame`` whose field (a column named in
    ``fields``, mapped to its field kind) holds a value of the plan; one row per event and
    indicator value (the first field that hit it), in row order. Fields the frame lacks are
    skipped; non-text columns are read as text.

    With ``pool``, fields are matched side by side: the string kernels of one column run on
    one core, and they release the interpreter while they work.
    """
    if plan.is_empty() or frame.height == 0:
        return _empty()
    present = [(f, k) for f, k in fields.items() if f in frame.columns]
    if pool is not None and len(present) > 1:
        futures = [pool.submit(_match_column, plan, frame, f, k) for f, k in present]
        found = [part for future in futures for part in future.result()]
    else:
        found = [part for f, k in present for part in _match_column(plan, frame, f, k)]
    parts = [p for p in found if p.height]
    if not parts:
        return _empty()
    return (
        pl.concat(parts, how="vertical")
        .unique(subset=[_ROW, "ref"], keep="first", maintain_order=True)
        .sort(_ROW, maintain_order=True)
    )
