"""Feeds over HTTP from a real local server: conditional requests, errors, timeouts half-way,
and the embedded scheduler."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest

from qalqan.feeds import subscriptions
from qalqan.feeds.fetch import FetchLimits
from qalqan.feeds.pipeline import RunReport
from qalqan.intel.warninglists import WarninglistIndex
from qalqan.store import feeds as feeds_store
from qalqan.testing import TestNode, serving

ADMIN = "admin@a.test"
BODY = b"# served list\n203.0.113.7\nevil.example.com\n"


class _Handler(BaseHTTPRequestHandler):
    mode: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        mode = self.mode.get("mode", "ok")
        if mode == "error":
            self.send_error(503, "maintenance")
            return
        if self.headers.get("If-None-Match") == '"v1"' and mode == "ok":
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Length", str(len(BODY) * 2))
        self.end_headers()
        self.wfile.write(BODY)
        if mode == "stall":
            time.sleep(2)  # half the promised body, then nothing until the client gives up
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.mode.clear()
    with serving(_Handler) as url:
        yield f"{url}list.txt"


@pytest.fixture(scope="module")
def index() -> WarninglistIndex:
    return WarninglistIndex.compile([])


def _run(node: TestNode, index: WarninglistIndex, timeout: float = 5.0) -> RunReport:
    return subscriptions.run_now(
        node.instance,
        node.principals[ADMIN],
        "served",
        index,
        trigger="cli",
        limits=FetchLimits(timeout=timeout),
    )


def test_http_feed_with_etag_errors_and_a_stall(
    node: TestNode, index: WarninglistIndex, server: str
) -> None:
    with node.instance.begin() as conn:
        subscriptions.add_feed(
            conn,
            node.principals[ADMIN],
            subscriptions.FeedSpec("served", "text", server, expire_after_seconds=0),
        )
    first = _run(node, index)
    assert (first.status, first.counts["new"]) == ("ok", 2)
    # 304 Not Modified: everything is still there, nothing expires.
    second = _run(node, index)
    assert (second.status, second.counts["unchanged"], second.counts["expired"]) == ("ok", 2, 0)
    _Handler.mode["mode"] = "error"
    failed = _run(node, index)
    assert failed.status == "failed"
    assert "503" in (failed.error or "")
    assert failed.counts["expired"] == 0
    _Handler.mode["mode"] = "stall"
    stalled = _run(node, index, timeout=0.5)
    assert stalled.status == "failed"
    assert "timed out" in (stalled.error or "")
    with node.instance.begin() as conn:
        feed = feeds_store.get_feed(conn, "served")
        live = [v for v in feeds_store.iter_values(conn, feed.id) if not v.expired]
    assert len(live) == 2


def test_embedded_scheduler_runs_due_feeds(node: TestNode, server: str) -> None:
    from qalqan.feeds.schedule import Scheduler

    with node.instance.begin() as conn:
        subscriptions.add_feed(
            conn,
            node.principals[ADMIN],
            subscriptions.FeedSpec("served", "text", server, schedule_seconds=3600),
        )
    scheduler = Scheduler(node.instance, interval=0.05)
    scheduler.start()
    try:
        deadline = time.monotonic() + 60
        runs: list[feeds_store.RunRecord] = []
        while time.monotonic() < deadline and not runs:
            time.sleep(0.1)
            with node.instance.begin() as conn:
                runs = [r for r in feeds_store.list_runs(conn, feed_id(node)) if r.status == "ok"]
    finally:
        scheduler.stop()
    assert runs
    assert runs[0].trigger == "schedule"


def feed_id(node: TestNode) -> str:
    with node.instance.begin() as conn:
        return feeds_store.get_feed(conn, "served").id
