"""Correlation at read time over 10,000,000 observables, against a table of correlated pairs.

The node holds 1,000,000 object versions of 20 orgs, each naming 10 values: 10,000,000 entries
of the observable index over 3,000,000 distinct addresses, domains and hashes (1% networks).
Values are drawn from a Zipf law (exponent 0.8), so the commonest value is named about 100,000
times, as a resolver or a CDN address is in real sharing. Rows are bulk-inserted in the shape
the importer writes them (see ``_corpus``); the index is built after the load.

Measured over HTTP against ``qalqan serve``, as an analyst of one org:

- ``GET /api/v1/observables/{type}/{value}/related`` for 500 values drawn uniformly from the
  distinct values (what an analyst opening any value meets): p50 / p99; and, apart, the ten
  commonest values (over-correlating: summarized, not listed);
- ``GET /api/v1/search?q=<network>/16`` for 100 networks: p50.

Baseline: the pair table MISP-style correlation keeps, one row per pair of entries sharing a
value with both sides' handling. Building it for 10M entries is out of reach (the commonest
value alone makes 5 billion pairs), so in the same run it is built for real for 20,000 values
drawn uniformly, its bytes per pair measured, and its full size computed from the exact pair
count. Our side of the comparison is the observable index as stored (table and indexes).
"""

from __future__ import annotations

import ipaddress
import random
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
from sqlalchemy import text

from benchmarks._common import Context, Latency, Row, running_server
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.observables import Observable, normalize
from qalqan.instance import Instance
from qalqan.store.clock import local_clock
from qalqan.testing import TestNode, fresh_instance

__all__ = ["run"]

NAME = "correlation"
SEED = 20_261_128
ORGS = 20
VALUES_PER_OBJECT = 10
ZIPF_EXPONENT = 0.8
TARGET_P50_MS, TARGET_P99_MS = 10.0, 100.0
TARGET_CIDR_P50_MS = 50.0
TARGET_STORAGE_RATIO = 10.0
_CHUNK = 100_000
_COUNTRIES = ("KZ", "UZ", "KG", "TJ", "TM", "AZ", "AM", "GE", "MN", "BY")
_READER = "analyst@r.test"
_PAIR_SAMPLE_VALUES = 20_000


def _value(rank: int) -> Observable:
    """The canonical value of distinct value number ``rank`` (deterministic)."""
    kind = rank % 10
    if kind < 4:
        return normalize("ip", f"{(rank * 2654435761) % 223 + 1}.{rank >> 16 & 255}."
                               f"{rank >> 8 & 255}.{rank & 255}")  # fmt: skip
    if kind == 4:
        return normalize("cidr", f"{rank % 223 + 1}.{rank >> 8 & 255}.{rank & 255}.0/24")
    if kind < 8:
        return normalize("domain", f"h{rank:x}.example-{rank % 97}.kz")
    return Observable("sha256", f"{rank:064x}")


def _draw_ranks(rng: np.random.Generator, distinct: int, count: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, distinct + 1, dtype=np.float64) ** ZIPF_EXPONENT
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    ranks: np.ndarray = np.searchsorted(cdf, rng.random(count)).astype(np.int64)
    return ranks


class _Node:
    def __init__(self, instance: Instance, data_dir: Path, key: str, ranks: np.ndarray) -> None:
        self.instance = instance
        self.data_dir = data_dir
        self.key = key
        self.ranks = ranks


def _handling(rng: random.Random, owner: str, group: str, members: set[str]) -> tuple[Any, ...]:
    roll = rng.random()
    if roll < 0.15:
        return int(TLP.AMBER), Distribution.ORGANIZATION.value, None
    if roll < 0.25 and owner in members:
        return int(TLP.AMBER), Distribution.SHARING_GROUP.value, group
    if roll < 0.30:
        return int(TLP.CLEAR), Distribution.ALL.value, None
    return int(TLP.GREEN), Distribution.NODE.value, None


def _build(ctx: Context) -> _Node:
    objects = ctx.size(1_000_000, 20_000)
    distinct = ctx.size(3_000_000, 60_000)
    data_dir = ctx.work_dir / "correlation-instance"
    instance = ctx.resources.enter_context(fresh_instance(data_dir))
    node = TestNode.create(instance, "CERT-1", "KZ")
    for i in range(2, ORGS + 1):
        node.add_org(f"CERT-{i}", _COUNTRIES[i % len(_COUNTRIES)])
    members = ["CERT-1", "CERT-2", "CERT-3", "CERT-4"]
    group = node.add_group("benchmark-group", "CERT-1", members)
    member_ids = {node.org_ids[m] for m in members}
    node.add_org("CERT-R", "KZ")
    key = node.add_user(_READER, "CERT-R")
    org_ids = [node.org_ids[f"CERT-{i}"] for i in range(1, ORGS + 1)]

    print(
        f"  building: {objects:,} versions x {VALUES_PER_OBJECT} values "
        f"({distinct:,} distinct, Zipf {ZIPF_EXPONENT}) ...",
        flush=True,
    )
    started = time.perf_counter()
    rng = random.Random(SEED)
    ranks = _draw_ranks(np.random.default_rng(SEED), distinct, objects * VALUES_PER_OBJECT)
    values = [_value(rank) for rank in range(distinct)]
    with instance.begin() as conn:
        first = local_clock(conn) + 1
        for index in ("ix_observables_value", "ix_observables_kind_ip", "ix_observables_rvalue",
                      "ix_observables_version_id"):  # fmt: skip
            conn.exec_driver_sql(f"DROP INDEX {index}")
    stamp = 1_767_225_600_000_000  # 2026-01-01
    for start in range(0, objects, _CHUNK):
        version_rows = []
        observable_rows = []
        for offset in range(start, min(start + _CHUNK, objects)):
            date_added = first + offset
            owner = rng.choice(org_ids)
            tlp, dist, sharing = _handling(rng, owner, group, member_ids)
            stix_id = f"indicator--{offset:08x}-0000-4000-8000-000000000000"
            content = f'{{"type":"indicator","id":"{stix_id}"}}'
            version_rows.append(
                (date_added, stix_id, "indicator", "2.1", stamp, stamp, 1, 0, 0,
                 f"object {offset}", content, owner, tlp, dist, sharing, "feed:benchmark",
                 None, None, 1)
            )  # fmt: skip
            for rank in ranks[offset * VALUES_PER_OBJECT : (offset + 1) * VALUES_PER_OBJECT]:
                v = values[rank]
                rvalue = v.value[::-1] if v.kind == "domain" else None
                observable_rows.append(
                    (date_added, v.kind, v.value, v.ip_start, v.ip_end, None, rvalue)
                )
        with instance.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO object_versions (date_added, stix_id, type, spec_version, created,"
                " modified, is_latest, revoked, withdrawn, name, content, owner_org_id, tlp,"
                " distribution, sharing_group_id, source, confidence, valid_until, detect)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                version_rows,
            )
            conn.exec_driver_sql(
                "INSERT INTO observables (version_id, kind, value, ip_start, ip_end,"
                " warninglist, rvalue) VALUES (?,?,?,?,?,?,?)",
                observable_rows,
            )
    print(f"  rows written in {time.perf_counter() - started:.0f} s; indexing ...", flush=True)
    with instance.begin() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_observables_value ON observables (value)")
        conn.exec_driver_sql("CREATE INDEX ix_observables_kind_ip ON observables (kind, ip_start)")
        conn.exec_driver_sql("CREATE INDEX ix_observables_rvalue ON observables (rvalue)")
        conn.exec_driver_sql("CREATE INDEX ix_observables_version_id ON observables (version_id)")
        conn.exec_driver_sql("UPDATE nodes SET clock = ? WHERE is_local", (first + objects - 1,))
        conn.exec_driver_sql(
            "UPDATE index_cursors SET position = ? WHERE name = 'analysis'",
            (first + objects - 1,),
        )
        conn.exec_driver_sql("ANALYZE")
    print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
    return _Node(instance, data_dir, key, ranks)


def _index_bytes(instance: Instance) -> int:
    """Bytes of the observable index as stored: the table and its indexes (SQLite dbstat when
    compiled in, else page counts of a VACUUM INTO copy holding only them)."""
    with instance.engine.connect() as conn:
        try:
            names = ("observables", "ix_observables_value", "ix_observables_kind_ip",
                     "ix_observables_rvalue", "ix_observables_version_id")  # fmt: skip
            marks = ",".join("?" for _ in names)
            found = conn.exec_driver_sql(
                f"SELECT sum(pgsize) FROM dbstat WHERE name IN ({marks})",  # noqa: S608
                names,
            ).scalar()
            return int(found or 0)
        except Exception:  # dbstat is an optional SQLite module
            page = conn.exec_driver_sql("PRAGMA page_size").scalar() or 4096
            count = conn.exec_driver_sql("PRAGMA page_count").scalar() or 0
            return int(page) * int(count)


def _pair_table(ctx: Context, node: _Node) -> tuple[float, int, int]:
    """(bytes per pair row, pair rows built, pairs of the whole store) of a MISP-style table."""
    counts = np.bincount(node.ranks)
    pairs_total = int((counts * (counts - 1) // 2).sum())
    rng = np.random.default_rng(SEED + 1)
    present = np.flatnonzero(counts)
    sample = set(rng.choice(present, size=min(_PAIR_SAMPLE_VALUES, len(present)), replace=False))
    path = ctx.work_dir / "pairs.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE correlations (id INTEGER PRIMARY KEY, value_id INTEGER NOT NULL,"
        " a_version INTEGER NOT NULL, a_org TEXT NOT NULL, a_distribution TEXT NOT NULL,"
        " a_group TEXT, b_version INTEGER NOT NULL, b_org TEXT NOT NULL,"
        " b_distribution TEXT NOT NULL, b_group TEXT)"
    )
    with node.instance.engine.connect() as conn:
        handling = {
            row[0]: row[1:]
            for row in conn.execute(
                text("SELECT date_added, owner_org_id, distribution, sharing_group_id"
                     " FROM object_versions WHERE stix_id LIKE 'indicator--%'")
            )
        }  # fmt: skip
        first = min(handling)
    positions: dict[int, list[int]] = {}
    for index, rank in enumerate(node.ranks.tolist()):
        if rank in sample:
            positions.setdefault(rank, []).append(first + index // VALUES_PER_OBJECT)
    built = 0
    batch: list[tuple[Any, ...]] = []
    for rank, versions in positions.items():
        for i, a in enumerate(versions):
            for b in versions[i + 1 :]:
                batch.append((rank, a, *handling[a], b, *handling[b]))
        if len(batch) > 200_000:
            db.executemany("INSERT INTO correlations VALUES (NULL,?,?,?,?,?,?,?,?,?)", batch)
            built += len(batch)
            batch = []
    db.executemany("INSERT INTO correlations VALUES (NULL,?,?,?,?,?,?,?,?,?)", batch)
    built += len(batch)
    db.execute("CREATE INDEX ix_correlations_a ON correlations (a_version)")
    db.execute("CREATE INDEX ix_correlations_b ON correlations (b_version)")
    db.commit()
    db.close()
    per_pair = path.stat().st_size / max(built, 1)
    return per_pair, built, pairs_total


def _sample_values(node: _Node, count: int) -> list[Observable]:
    present = sorted(set(node.ranks.tolist()))
    rng = random.Random(SEED + 2)
    return [_value(rank) for rank in rng.sample(present, min(count, len(present)))]


def _lookup_path(v: Observable) -> str:
    return f"/api/v1/observables/{v.kind}/{quote(v.value, safe='')}/related"


def run(ctx: Context) -> list[Row]:
    """Build the node, time related lookups and /16 searches, and size the pair table."""
    node = ctx.shared("correlation_node", _build)
    lookups = ctx.size(500, 100)
    values = _sample_values(node, lookups)
    top = [_value(rank) for rank in range(10)]
    # /16 networks around stored addresses, so each search has something to page through.
    networks = sorted(
        {str(ipaddress.ip_network(f"{v.value}/16", strict=False)) for v in values if v.kind == "ip"}
    )[:100]
    headers = {"Authorization": f"Bearer {node.key}"}
    with (
        running_server(node.data_dir) as base_url,
        httpx.Client(base_url=base_url, headers=headers, timeout=120) as client,
    ):

        def timed(path: str, params: dict[str, str] | None = None) -> tuple[float, Any]:
            start = time.perf_counter()
            response = client.get(path, params=params)
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            return elapsed, response.json()

        for v in values[:20]:
            timed(_lookup_path(v))  # warm the page cache as a running node has it
        samples, totals = [], []
        for v in values:
            seconds, body = timed(_lookup_path(v))
            samples.append(seconds)
            totals.append(body["total"])
        top_samples, over = [], 0
        for v in top:
            seconds, body = timed(_lookup_path(v))
            top_samples.append(seconds)
            over += body["over_correlating"]
        cidr_samples, cidr_hits = [], []
        for network in networks:
            seconds, body = timed("/api/v1/search", {"q": network, "facets": "false"})
            cidr_samples.append(seconds)
            cidr_hits.append(len(body["items"]))
    millis = sorted(s * 1000 for s in samples)
    p50 = statistics.median(millis)
    p99 = millis[min(len(millis) - 1, round(0.99 * (len(millis) - 1)))]
    top_ms = sorted(s * 1000 for s in top_samples)
    cidr = Latency.of(cidr_samples)

    index_bytes = _index_bytes(node.instance)
    per_pair, built, pairs_total = _pair_table(ctx, node)
    pair_bytes = per_pair * pairs_total
    storage_ratio = pair_bytes / index_bytes

    entries = len(node.ranks)
    print(f"  {entries:,} index entries; commonest value named {np.bincount(node.ranks).max():,}"
          " times")  # fmt: skip
    print(
        f"  related lookup, uniform values : p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
        f"(n={len(millis)}, median total {statistics.median(totals):.0f})"
    )
    print(
        f"  related lookup, 10 commonest   : p50 {statistics.median(top_ms):7.2f} ms  "
        f"max {top_ms[-1]:7.2f} ms  ({over} of 10 over-correlating)"
    )
    print(
        f"  search of a /16 network        : {cidr}  "
        f"(first page, median {statistics.median(cidr_hits):.0f} items)"
    )
    print(
        f"  observable index as stored     : {index_bytes / 1e6:,.0f} MB\n"
        f"  pair table                     : {pairs_total:,} pairs x {per_pair:.0f} B "
        f"(measured on {built:,} pairs built) = {pair_bytes / 1e9:,.0f} GB\n"
        f"  ratio pair table / index       : {storage_ratio:,.0f}x"
    )
    return [
        Row(NAME, "related p50", f"{p50:.2f} ms", "-", None, f"<= {TARGET_P50_MS:.0f} ms",
            p50 <= TARGET_P50_MS),
        Row(NAME, "related p99", f"{p99:.2f} ms", "-", None, f"<= {TARGET_P99_MS:.0f} ms",
            p99 <= TARGET_P99_MS),
        Row(NAME, "/16 search p50", f"{cidr.p50:.2f} ms", "-", None,
            f"<= {TARGET_CIDR_P50_MS:.0f} ms", cidr.p50 <= TARGET_CIDR_P50_MS),
        Row(NAME, "storage", f"{index_bytes / 1e6:,.0f} MB", f"{pair_bytes / 1e9:,.0f} GB pairs",
            storage_ratio, f">= {TARGET_STORAGE_RATIO:.0f}x smaller",
            storage_ratio >= TARGET_STORAGE_RATIO),
    ]  # fmt: skip
