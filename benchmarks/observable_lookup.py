"""``GET /api/v1/observables?value=...`` against an index of a million observables.

The values asked for are indexed ones (addresses, networks, domains, hashes) picked at random,
plus addresses that fall inside stored networks, which must be found by range containment. The
baseline is what a store without the index would do: ``content LIKE '%value%'`` over every
stored version, timed directly on SQLite for a handful of values.
"""

from __future__ import annotations

import ipaddress
import random
import statistics
import time
from typing import Any

import httpx
from sqlalchemy import select

from benchmarks._common import Context, Latency, Row
from benchmarks._corpus import LargeStore, large_store
from qalqan.policy import visible_to
from qalqan.store.tables import object_versions as ov

__all__ = ["run"]

NAME = "observable_lookup"
SEED = 4_242
TARGET_P50_MS = 5.0
INSIDE_NETWORK_SHARE = 0.2


def _queries(store: LargeStore, count: int) -> tuple[list[str], set[str]]:
    """Indexed values and addresses inside indexed networks, in a seeded order; and which of
    the values are such addresses."""
    rng = random.Random(SEED)
    inside = round(count * INSIDE_NETWORK_SHARE)
    values = rng.sample(store.indexed_values, min(count - inside, len(store.indexed_values)))
    addresses = set()
    for network_text in rng.choices(store.networks, k=inside):
        network = ipaddress.ip_network(network_text)
        addresses.add(str(network[rng.randrange(1, network.num_addresses - 1)]))
    values.extend(sorted(addresses))
    rng.shuffle(values)
    return values, addresses


def _like_scan_seconds(store: LargeStore, values: list[str]) -> list[float]:
    seconds = []
    with store.instance.engine.connect() as conn:
        for value in values:
            stmt = select(ov.c.date_added).where(
                ov.c.content.like(f"%{value}%"),
                ov.c.is_latest.is_(True),
                visible_to(store.reader, ov),
            )
            start = time.perf_counter()
            conn.execute(stmt).all()
            seconds.append(time.perf_counter() - start)
    return seconds


def run(ctx: Context) -> list[Row]:
    """Time lookups over HTTP, and LIKE scans of the stored JSON for a few of the same values."""
    store = large_store(ctx)
    queries, addresses = _queries(store, ctx.size(300, 60))
    headers = {"Authorization": f"Bearer {store.reader_key}"}
    with httpx.Client(base_url=store.base_url, headers=headers, timeout=60) as client:

        def lookup(value: str) -> dict[str, Any]:
            response = client.get("/api/v1/observables", params={"value": value})
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

        found = sum(1 for value in queries if lookup(value)["items"])
        seconds: dict[str, float] = {}
        for value in queries:
            start = time.perf_counter()
            lookup(value)
            seconds[value] = time.perf_counter() - start
    latency = Latency.of(list(seconds.values()))
    exact = [v for v in queries if v not in addresses]
    by_value = Latency.of([seconds[v] for v in exact])
    by_network = Latency.of([seconds[v] for v in addresses])

    scanned = exact[: ctx.size(5, 3)]
    scan_ms = [s * 1000 for s in _like_scan_seconds(store, scanned)]
    scan_p50 = statistics.median(scan_ms)

    print(
        f"  {store.observables:,} observables indexed; {len(queries)} lookups of which "
        f"{found} have visible hits"
    )
    print(f"  index lookup, HTTP, all             : {latency}")
    print(f"    indexed values                    : {by_value}")
    print(f"    addresses inside stored networks  : {by_network}")
    print(
        f"  LIKE scan of content, SQL           : p50 {scan_p50:7.2f} ms  (n={len(scan_ms)}, "
        "indexed values only: LIKE cannot find an address inside a network)"
    )
    ratio = scan_p50 / by_value.p50
    print(f"  ratio LIKE scan / index lookup of the same kind of value (p50): {ratio:,.0f}x")
    return [
        Row(
            NAME,
            "lookup p50",
            f"{latency.p50:.2f} ms",
            f"{scan_p50:,.0f} ms (LIKE)",
            ratio,
            f"<= {TARGET_P50_MS:.0f} ms",
            latency.p50 <= TARGET_P50_MS,
        )
    ]
