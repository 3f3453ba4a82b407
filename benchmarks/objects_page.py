"""``GET /api/v1/objects?limit=100`` on a million stored versions: first page and last page.

Pages are keyset pages on ``date_added``, so the last page should cost what the first does. The
baseline is the usual alternative, ``ORDER BY date_added LIMIT 100 OFFSET n`` with the same
visibility filter, timed directly on SQLite: it has to walk past every earlier row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from benchmarks._common import Context, Latency, Row, measure_latency
from benchmarks._corpus import LargeStore, large_store, visible_latest
from qalqan.intel.reading import encode_cursor
from qalqan.store.tables import object_versions as ov

__all__ = ["run"]

NAME = "objects_page"
PAGE = 100
TARGET_P50_MS = 20.0
# "The last page costs about what the first does": within half again, plus a millisecond.
SAME_COST_FACTOR = 1.5


def _last_page_cursor(store: LargeStore) -> int:
    """The ``date_added`` just before the last full page the reader may see."""
    stmt = visible_latest(store.reader).with_only_columns(ov.c.date_added)
    stmt = stmt.order_by(ov.c.date_added.desc()).limit(1).offset(PAGE)
    with store.instance.engine.connect() as conn:
        position: int = conn.execute(stmt).scalar_one()
    return position


def _page_getter(client: httpx.Client, cursor: str | None) -> Callable[[int], dict[str, Any]]:
    params = {"limit": str(PAGE)} | ({"cursor": cursor} if cursor else {})

    def get(_: int) -> dict[str, Any]:
        response = client.get("/api/v1/objects", params=params)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    return get


def run(ctx: Context) -> list[Row]:
    """Time the first and the last keyset page over HTTP, and the OFFSET query for the last."""
    store = large_store(ctx)
    requests = ctx.size(200, 50)
    headers = {"Authorization": f"Bearer {store.reader_key}"}
    with httpx.Client(base_url=store.base_url, headers=headers, timeout=60) as client:
        get_first = _page_getter(client, None)
        first_body = get_first(0)
        get_last = _page_getter(client, encode_cursor(_last_page_cursor(store)))
        last_body = get_last(0)
        if len(first_body["items"]) != PAGE or first_body["next"] is None:
            raise RuntimeError("the first page is not a full page with a next cursor")
        if len(last_body["items"]) != PAGE or last_body["next"] is not None:
            raise RuntimeError("the last page is not a full page without a next cursor")
        first = measure_latency(get_first, requests)
        last = measure_latency(get_last, requests)

    offset = store.visible - PAGE
    naive_stmt = visible_latest(store.reader).order_by(ov.c.date_added).limit(PAGE).offset(offset)
    with store.instance.engine.connect() as conn:
        naive_page = [row.stix_id for row in conn.execute(naive_stmt)]
        naive = measure_latency(lambda _: conn.execute(naive_stmt).all(), ctx.size(7, 3), warmup=1)
    if naive_page != [item["id"] for item in last_body["items"]]:
        raise RuntimeError("the OFFSET query and the keyset API disagree on the last page")

    print(f"  {store.visible:,} latest versions visible to the reader, pages of {PAGE}")
    print(f"  keyset, HTTP, first page : {first}")
    print(f"  keyset, HTTP, last page  : {last}")
    print(f"  OFFSET {offset:,}, SQL only : {naive}")
    ratio = naive.p50 / last.p50
    print(
        f"  ratio OFFSET / keyset (last page, p50): {ratio:.1f}x "
        "(the keyset figure includes HTTP, authentication and JSON; the OFFSET one is bare SQL)"
    )
    same_cost = last.p50 <= first.p50 * SAME_COST_FACTOR + 1.0
    return [
        _row("first page p50", first, None, None, f"<= {TARGET_P50_MS:.0f} ms", True),
        _row(
            "last page p50",
            last,
            naive,
            ratio,
            f"<= {TARGET_P50_MS:.0f} ms, ~ first",
            same_cost,
        ),
    ]


def _row(
    metric: str,
    measured: Latency,
    baseline: Latency | None,
    ratio: float | None,
    target: str,
    extra_condition: bool,
) -> Row:
    return Row(
        NAME,
        metric,
        f"{measured.p50:.2f} ms",
        f"{baseline.p50:.2f} ms (OFFSET)" if baseline else "-",
        ratio,
        target,
        measured.p50 <= TARGET_P50_MS and extra_condition,
    )
