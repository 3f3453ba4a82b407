"""``taxii_paging``: read a whole TAXII 2.1 collection through ``taxii2-client``, page by page.

The node holds small STIX 2.1 indicators (and a few malware and attack patterns), all TLP:GREEN
with distribution ``node``, owned by the node's first org and read by an analyst of another org,
so the visibility filter is part of every query. The client is the real ``taxii2-client``:
``Server`` → API root → the collection ``all`` → ``as_pages(get_objects, per_request=1000)``,
counting objects, against ``qalqan serve`` in a child process.

Baselines, measured in the same run with the same client:

* static pages: the very envelopes Qalqan sent, recorded beforehand and served by
  ``http.server`` (keyed by path and ``next`` token) in a child process, so that the client's
  JSON parsing does not share an interpreter lock with the server. What Qalqan adds over it is
  the cost of querying and rendering a page;
* medallion, the OASIS reference server, with its memory backend in a child process, on the
  first 5,000 of the same objects (it copies the whole collection on every first page).

Then the store grows to 1,000,000 objects and page 1 and page 1,000 (pages of 1,000) are timed
over HTTP: keyset pages should cost the same wherever they are.

``--quick`` pages through 5,000 objects (medallion: 1,000) and times the last full page of a
20,000-object store instead.

The rows are bulk-inserted with SQLAlchemy Core in the importer's row shape, as ``_corpus``
does; the observable index is left empty because the TAXII server never reads it.
"""

from __future__ import annotations

import io
import multiprocessing
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import requests
from sqlalchemy import Select, func, insert, select, update
from taxii2client.v21 import Server, as_pages

from benchmarks._common import (
    Context,
    Latency,
    Row,
    measure_latency,
    running_server,
    seeded_uuid,
    stix_stamp,
)
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal
from qalqan.domain.stix import format_timestamp, parse_timestamp
from qalqan.instance import Instance
from qalqan.intel.reading import encode_cursor
from qalqan.policy import visible_to
from qalqan.store.clock import local_clock
from qalqan.store.tables import nodes
from qalqan.store.tables import object_versions as ov
from qalqan.testing import TestNode, fresh_instance

__all__ = ["run"]

NAME = "taxii_paging"
SEED = 2_100_021
PAGE = 1000
COLLECTION = "all"
TARGET_RATE = 90_000.0
# Qalqan may be at most this many times slower than serving the same pages from memory.
STATIC_FACTOR = 3.0
# Page 1,000 of a million objects may cost at most half again what page 1 does.
FLAT_FACTOR = 1.5
MEDALLION_OBJECTS = 5_000
RUNS = 3  # complete pagings per server; the median counts
READER = "analyst@b.test"

_CHUNK = 25_000
_SOURCE = "feed:benchmark"
_START_TIMEOUT_S = 60.0
_TAXII = "application/taxii+json;version=2.1"
_STIX = "application/stix+json;version=2.1"
_MEDALLION_ROOT = "api1"
_MEDALLION_COLLECTION = "6d1c0a8e-5f4b-4a3e-9c2d-1b0a9f8e7d6c"
_MEDALLION_USER = ("analyst", "benchmark only")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_TLDS = ("com", "net", "org", "info", "kz", "uz", "kg", "tj", "io")


# --- the data -------------------------------------------------------------------------------


def _label(rng: random.Random) -> str:
    return "".join(rng.choices(_LETTERS, k=rng.randint(5, 12)))


def _pattern(rng: random.Random) -> tuple[str, str]:
    """An indicator's name and STIX pattern for one IPv4 address, domain or SHA-256."""
    roll = rng.random()
    if roll < 0.4:
        value = ".".join(str(rng.randrange(1, 224 if i == 0 else 256)) for i in range(4))
        return f"C2 {value}", f"[ipv4-addr:value = '{value}']"
    if roll < 0.75:
        value = f"{_label(rng)}.{_label(rng)}.{rng.choice(_TLDS)}"
        return f"Phishing domain {value}", f"[domain-name:value = '{value}']"
    value = f"{rng.getrandbits(256):064x}"
    return f"Dropper {value[:12]}", f"[file:hashes.'SHA-256' = '{value}']"


def _stix_object(rng: random.Random) -> dict[str, Any]:
    """A small valid STIX 2.1 object marked TLP:GREEN: mostly indicators."""
    stamp = stix_stamp(rng)
    roll = rng.random()
    type_name = "malware" if roll < 0.03 else "attack-pattern" if roll < 0.06 else "indicator"
    obj: dict[str, Any] = {
        "type": type_name,
        "spec_version": "2.1",
        "id": f"{type_name}--{seeded_uuid(rng)}",
        "created": stamp,
        "modified": stamp,
    }
    if type_name == "indicator":
        name, pattern = _pattern(rng)
        obj.update(
            name=name,
            indicator_types=["malicious-activity"],
            pattern=pattern,
            pattern_type="stix",
            valid_from=stamp,
        )
    elif type_name == "malware":
        obj.update(name=f"{_label(rng).title()}Loader", is_family=True)
    else:
        obj["name"] = _label(rng).title()
    obj["object_marking_refs"] = [TLP.GREEN.marking_id]
    return obj


def _row(obj: dict[str, Any], date_added: int, owner_org_id: str) -> dict[str, Any]:
    stamp = parse_timestamp(obj["modified"])
    return {
        "date_added": date_added,
        "stix_id": obj["id"],
        "type": obj["type"],
        "spec_version": "2.1",
        "created": stamp,
        "modified": stamp,
        "is_latest": True,
        "revoked": False,
        "withdrawn": False,
        "name": obj["name"],
        "content": orjson.dumps(obj).decode(),
        "owner_org_id": owner_org_id,
        "tlp": int(TLP.GREEN),
        "distribution": Distribution.NODE.value,
        "sharing_group_id": None,
        "source": _SOURCE,
        "confidence": None,
        "valid_until": None,
        "detect": True,
    }


@dataclass
class _Store:
    """The node, its collection's size so far, and the generator that continues it."""

    instance: Instance
    data_dir: Path
    owner_org_id: str
    reader: Principal
    reader_key: str
    rng: random.Random
    count: int = 0

    def grow(self, until: int) -> float:
        """Add objects until the node holds ``until``; the seconds it took."""
        started = time.perf_counter()
        with self.instance.begin() as conn:
            date_added = local_clock(conn) + 1
        while self.count < until:
            size = min(_CHUNK, until - self.count)
            rows = [
                _row(_stix_object(self.rng), date_added + i, self.owner_org_id) for i in range(size)
            ]
            with self.instance.begin() as conn:
                conn.execute(insert(ov), rows)
            date_added += size
            self.count += size
        # The node's clock moves past the rows, so that new writes are dated after them.
        with self.instance.begin() as conn:
            conn.execute(update(nodes).where(nodes.c.is_local).values(clock=date_added - 1))
        return time.perf_counter() - started

    def _collection(self) -> Select[Any]:
        """What the reader sees in the collection (``date_added`` only, in no order)."""
        return select(ov.c.date_added).where(
            visible_to(self.reader, ov), ov.c.is_latest.is_(True), ov.c.withdrawn.is_(False)
        )

    def visible(self) -> int:
        """How many objects the reader sees: the generated ones and the node's own (its
        identities and the TLP marking definitions)."""
        stmt = select(func.count()).select_from(self._collection().subquery())
        with self.instance.engine.connect() as conn:
            count: int = conn.execute(stmt).scalar_one()
        return count

    def position_before_page(self, page: int) -> int:
        """The ``date_added`` of the last object the reader sees before page ``page``."""
        stmt = self._collection().order_by(ov.c.date_added).offset((page - 1) * PAGE - 1).limit(1)
        with self.instance.engine.connect() as conn:
            position: int = conn.execute(stmt).scalar_one()
        return position

    def first_objects(self, count: int) -> list[tuple[int, dict[str, Any]]]:
        """The first ``count`` generated objects with their ``date_added``."""
        stmt = (
            select(ov.c.date_added, ov.c.content)
            .where(ov.c.source == _SOURCE)
            .order_by(ov.c.date_added)
            .limit(count)
        )
        with self.instance.engine.connect() as conn:
            return [(row[0], orjson.loads(row[1])) for row in conn.execute(stmt)]


def _new_store(instance: Instance, data_dir: Path) -> _Store:
    node = TestNode.create(instance)
    node.add_org("CERT-B", "UZ")
    key = node.add_user(READER, "CERT-B")
    return _Store(
        instance,
        data_dir,
        node.org_ids["CERT-A"],
        node.principals[READER],
        key,
        random.Random(SEED),
    )


# --- the client -----------------------------------------------------------------------------


class _Bearer(requests.auth.AuthBase):
    """``Authorization: Bearer <api key>`` on every request of ``taxii2-client``."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.key}"
        return request


def _page_through(discovery_url: str, collection: str, **credentials: Any) -> tuple[int, float]:
    """Page through a collection (by id or alias) with ``taxii2-client``, from discovery on;
    the objects counted and the seconds it took."""
    started = time.perf_counter()
    server = Server(discovery_url, **credentials)
    try:
        root = server.api_roots[0]
        found = next(c for c in root.collections if collection in (c.id, c.alias))
        count = 0
        for envelope in as_pages(found.get_objects, per_request=PAGE):
            count += len(envelope.get("objects", ()))
    finally:
        server.close()
    return count, time.perf_counter() - started


@dataclass(frozen=True)
class _Rate:
    objects: int
    runs_s: list[float]

    @property
    def per_second(self) -> float:
        return self.objects / statistics.median(self.runs_s)

    def __str__(self) -> str:
        runs = ", ".join(f"{s:.2f}" for s in self.runs_s)
        return f"{self.per_second:>10,.0f} objects/s  ({self.objects:,} objects; runs {runs} s)"


def _rate(
    page_through: Callable[[], tuple[int, float]], expected: int, runs: int, *, warmup: bool = True
) -> _Rate:
    """The median rate of ``runs`` complete pagings, after an untimed one if ``warmup``."""
    if warmup:
        page_through()
    seconds = []
    for _ in range(runs):
        count, elapsed = page_through()
        if count != expected:
            raise RuntimeError(f"paged through {count:,} objects, expected {expected:,}")
        seconds.append(elapsed)
    return _Rate(expected, seconds)


# --- the baseline servers, each in a child process ------------------------------------------


Pages = dict[tuple[str, str], tuple[str, bytes]]


def _record_pages(base_url: str, key: str) -> Pages:
    """Qalqan's answers to every request a paging client makes, keyed by path and ``next``."""
    headers = {"Authorization": f"Bearer {key}", "Accept": _TAXII}
    pages: Pages = {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:

        def get(path: str, token: str = "", **params: str) -> bytes:
            response = client.get(path, params=params | ({"next": token} if token else {}))
            response.raise_for_status()
            pages[(path, token)] = (response.headers["content-type"], response.content)
            return response.content

        get("/taxii2/")
        get("/taxii2/api/")
        listed = orjson.loads(get("/taxii2/api/collections/"))["collections"]
        collection = next(c for c in listed if c.get("alias") == COLLECTION)
        get(f"/taxii2/api/collections/{collection['id']}/")
        path = f"/taxii2/api/collections/{collection['id']}/objects/"
        token = ""
        while True:
            envelope = orjson.loads(get(path, token, limit=str(PAGE)))
            if not envelope["more"]:
                return pages
            token = envelope["next"]


class _StaticPageServer(ThreadingHTTPServer):
    pages: Pages


class _StaticPageHandler(BaseHTTPRequestHandler):
    """Answers each GET with the recorded page for its path and ``next`` token."""

    server: _StaticPageServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        token = parse_qs(query).get("next", [""])[0]
        found = self.server.pages.get((path, token))
        if found is None:
            self.send_error(404)
            return
        content_type, body = found
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _serve_until_told(server: Any, port: int, conn: Connection) -> None:
    """Serve until the parent says so or goes away (its end of the pipe closes)."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    conn.send(port)
    with suppress(EOFError):
        conn.recv()
    server.shutdown()
    server.server_close()
    thread.join()


def _serve_static_pages(pages: Pages, conn: Connection) -> None:
    server = _StaticPageServer(("127.0.0.1", 0), _StaticPageHandler)
    server.pages = pages
    _serve_until_told(server, server.server_address[1], conn)


def _serve_medallion(objects: list[tuple[int, dict[str, Any]]], conn: Connection) -> None:
    # medallion builds its app on a module-level Flask instance; a fresh one is configured
    # with medallion's own helpers, as its memory backend holding one collection.
    import medallion
    from flask import Flask
    from medallion.exceptions import BackendError, ProcessingError
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: Any) -> None:
            return

    collection = {
        "id": _MEDALLION_COLLECTION,
        "title": "Everything",
        "can_read": True,
        "can_write": False,
        "media_types": [_STIX],
        "objects": [obj for _, obj in objects],
        "manifest": [
            {
                "id": obj["id"],
                "date_added": format_timestamp(date_added),
                "version": obj["modified"],
                "media_type": _STIX,
            }
            for date_added, obj in objects
        ],
    }
    root = {
        "information": {"title": "Benchmark", "versions": [_TAXII], "max_content_length": 10**8},
        "status": [],
        "collections": [collection],
    }
    backend = {
        "module": "medallion.backends.memory_backend",
        "module_class": "MemoryBackend",
        "filename": io.StringIO(orjson.dumps({_MEDALLION_ROOT: root}).decode()),
        # Its sweep of expired paging sessions runs on a timer thread that never stops.
        "check_interval": 24 * 3600,
    }
    user, password = _MEDALLION_USER
    config = {"users": {user: password}, "taxii": {"max_page_size": PAGE}, "backend": backend}
    app = Flask("taxii-paging-baseline")
    for part in ("users", "taxii", "backend"):
        medallion.set_config(app, part, config)
    medallion.register_blueprints(app)
    app.register_error_handler(ProcessingError, medallion.handle_processing_error)
    app.register_error_handler(BackendError, medallion.handle_backend_error)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    base_url = f"http://127.0.0.1:{server.port}/"
    app.medallion_backend.data["/discovery"] = {  # type: ignore[attr-defined]
        "title": "medallion",
        "default": f"{base_url}{_MEDALLION_ROOT}/",
        "api_roots": [f"{base_url}{_MEDALLION_ROOT}/"],
    }
    _serve_until_told(server, server.port, conn)


@contextmanager
def _child_server(serve: Callable[[Any, Connection], None], payload: Any) -> Iterator[str]:
    """Run ``serve(payload, pipe)`` in a fresh process; yields the base URL it listens on."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve, args=(payload, theirs), daemon=True)
    process.start()
    theirs.close()
    try:
        if not ours.poll(_START_TIMEOUT_S):
            raise RuntimeError("a baseline server did not start in time")
        port = ours.recv()
        yield f"http://127.0.0.1:{port}"
    finally:
        with suppress(OSError):
            ours.send("stop")
        ours.close()
        process.join(timeout=15)
        if process.is_alive():
            process.terminate()
            process.join()


# --- the benchmark --------------------------------------------------------------------------


def _paging(ctx: Context, store: _Store) -> list[Row]:
    visible = store.visible()
    with running_server(store.data_dir) as base_url:
        discovery = f"{base_url}/taxii2/"
        auth = _Bearer(store.reader_key)
        qalqan = _rate(lambda: _page_through(discovery, COLLECTION, auth=auth), visible, RUNS)
        pages = _record_pages(base_url, store.reader_key)
    page_count = sum(1 for path, _ in pages if path.endswith("/objects/"))
    with _child_server(_serve_static_pages, pages) as static_url:
        static = _rate(
            lambda: _page_through(f"{static_url}/taxii2/", COLLECTION, auth=auth),
            visible,
            RUNS,
        )
    sample = store.first_objects(ctx.size(MEDALLION_OBJECTS, 1_000))
    with _child_server(_serve_medallion, sample) as medallion_url:
        user, password = _MEDALLION_USER
        # One run: it takes minutes, and every paging starts from scratch anyway (the first
        # page copies the collection and matches each object to the manifest, O(n²)).
        medallion = _rate(
            lambda: _page_through(
                f"{medallion_url}/taxii2/", _MEDALLION_COLLECTION, user=user, password=password
            ),
            len(sample),
            1,
            warmup=False,
        )

    print(f"  taxii2-client, pages of {PAGE:,}, from discovery to the last page (median run):")
    print(f"  qalqan serve        : {qalqan}")
    print(f"  static pages        : {static}  ({page_count} recorded envelopes, http.server)")
    print(f"  medallion (memory)  : {medallion}")
    static_ratio = qalqan.per_second / static.per_second
    medallion_ratio = qalqan.per_second / medallion.per_second
    print(
        f"  ratio qalqan / static pages: {static_ratio:.2f}x "
        f"(qalqan {1 / static_ratio:.2f}x slower; at most {STATIC_FACTOR:.0f}x allowed)"
    )
    print(f"  ratio qalqan / medallion: {medallion_ratio:.1f}x")
    rate = f"{qalqan.per_second:,.0f} obj/s"
    return [
        Row(
            NAME,
            f"paging {visible:,} objects",
            rate,
            "-",
            None,
            f">= {TARGET_RATE:,.0f} obj/s",
            qalqan.per_second >= TARGET_RATE,
        ),
        Row(
            NAME,
            "vs static pages",
            rate,
            f"{static.per_second:,.0f} obj/s (static)",
            static_ratio,
            f"<= {STATIC_FACTOR:.0f}x slower",
            static.per_second <= STATIC_FACTOR * qalqan.per_second,
        ),
        Row(
            NAME,
            f"vs medallion ({len(sample):,} obj)",
            rate,
            f"{medallion.per_second:,.0f} obj/s (medallion)",
            medallion_ratio,
            "faster",
            medallion_ratio > 1,
        ),
    ]


def _page_latency(ctx: Context, store: _Store) -> list[Row]:
    far = min(1000, store.count // PAGE)
    token = encode_cursor(store.position_before_page(far))
    requests_ = ctx.size(100, 20)
    headers = {"Authorization": f"Bearer {store.reader_key}", "Accept": _TAXII}
    with (
        running_server(store.data_dir) as base_url,
        httpx.Client(base_url=base_url, headers=headers, timeout=60) as client,
    ):
        listed = client.get("/taxii2/api/collections/").json()["collections"]
        collection_id = next(c["id"] for c in listed if c.get("alias") == COLLECTION)
        path = f"/taxii2/api/collections/{collection_id}/objects/"

        def getter(params: dict[str, str]) -> Callable[[int], bytes]:
            def get(_: int) -> bytes:
                response = client.get(path, params=params)
                response.raise_for_status()
                return response.content

            return get

        get_first = getter({"limit": str(PAGE)})
        get_far = getter({"limit": str(PAGE), "next": token})
        for get in (get_first, get_far):
            if len(orjson.loads(get(0))["objects"]) != PAGE:
                raise RuntimeError("a measured page is not a full page")
        first = measure_latency(get_first, requests_)
        far_latency = measure_latency(get_far, requests_)

    print(f"  {store.count:,} objects, pages of {PAGE:,}, over HTTP (raw envelope, not parsed):")
    print(f"  {'page 1':<11}: {first}")
    print(f"  {f'page {far:,}':<11}: {far_latency}")
    ratio = far_latency.p50 / first.p50
    print(f"  ratio page {far:,} / page 1 (p50): {ratio:.2f}x (at most {FLAT_FACTOR}x allowed)")
    return [_latency_row(f"page {far:,} vs 1 p50 ({store.count:,})", far_latency, first)]


def _latency_row(metric: str, far: Latency, first: Latency) -> Row:
    return Row(
        NAME,
        metric,
        f"{far.p50:.1f} ms",
        f"{first.p50:.1f} ms (page 1)",
        first.p50 / far.p50,
        f"<= {FLAT_FACTOR}x page 1",
        far.p50 <= FLAT_FACTOR * first.p50,
    )


def run(ctx: Context) -> list[Row]:
    """Page through the collection with three servers, then time a near and a far page."""
    paged = ctx.size(100_000, MEDALLION_OBJECTS)
    large = ctx.size(1_000_000, 20_000)
    data_dir = ctx.work_dir / "taxii-instance"
    with fresh_instance(data_dir) as instance:
        store = _new_store(instance, data_dir)
        seconds = store.grow(paged)
        print(f"  {store.count:,} objects stored (seed {SEED}) in {seconds:.0f} s", flush=True)
        rows = _paging(ctx, store)
        seconds = store.grow(large)
        print(f"  grown to {store.count:,} objects in {seconds:.0f} s", flush=True)
        rows += _page_latency(ctx, store)
    return rows
